/*
 * route: which backend a user's session goes to, from the map file named
 * by route_map in [moat], read at startup and on every reload. One entry
 * a line:
 *
 *     # a comment, at the start of a line or after whitespace
 *     alice@example.com   store-a
 *     bob                 store-b
 *     @example.org        store-b      # every user of a domain
 *
 * KEY and BACKEND are separated by spaces or tabs. KEY is a login name
 * (with or without @domain) or "@domain"; BACKEND names a [backend NAME]
 * section. Keys compare case-insensitively (ASCII), backend names exactly.
 * Lines end in LF or CRLF and hold at most 1024 bytes before that.
 *
 * Loading reports every problem (the first 20 by line, then "... more
 * errors"): a line that is not KEY BACKEND, an unknown backend, a key
 * given twice, a line that is too long. A map with any problem is not
 * made, so a reload with a broken file keeps the map in force.
 *
 * The map holds the file's text and one array of its entries sorted by
 * key: a lookup is a binary search, for 100,000 lines as for 10. It never
 * changes after load, so every worker may look up in it at once.
 */
#ifndef MOAT_ROUTE_H
#define MOAT_ROUTE_H

#include <stddef.h>

struct route_map;

/* Loads path; names[0..nnames) are the backend names a line may use.
 * Returns 0 with *out (caller frees with route_map_free), or -1 with
 * *errors: "FILE:LINE: message\n" lines (or "FILE: message\n" when the
 * file cannot be read), malloc'd, caller frees; NULL only when even that
 * string could not be allocated. */
int route_map_load(const char *path, const char *const *names, size_t nnames,
                   struct route_map **out, char **errors) __attribute__((warn_unused_result));

/* The backend (an index into the names given to load) for the login name
 * user[0..len): the exact name first, then "@" + the part after its last
 * '@'; -1 when neither is in the map, or when m is NULL. */
long route_lookup(const struct route_map *m, const char *user, size_t len);

/* Entries in the map (0 for NULL). */
size_t route_map_entries(const struct route_map *m);

/* Frees a map from route_map_load; NULL is fine. */
void route_map_free(struct route_map *m);

/* The login name a backend gets for user[0..len): with strip_domain the
 * part from the last '@' on is removed; then with add_domain (NULL or ""
 * = none) "@add_domain" is appended if the name has no '@'. Returns 0 and
 * writes the NUL-terminated result to out and its length to *out_len
 * (when not NULL), or -1, writing nothing, if it does not fit in cap (cap
 * includes the NUL) or the name is empty before add_domain (user "" or,
 * with strip_domain, "@x"). out may be user itself. */
int route_rewrite_user(const char *user, size_t len, int strip_domain, const char *add_domain,
                       char *out, size_t cap, size_t *out_len) __attribute__((warn_unused_result));

#endif /* MOAT_ROUTE_H */
