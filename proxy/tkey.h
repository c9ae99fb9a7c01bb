/*
 * tkey: the session-ticket key file that several moat instances share, so
 * that a client resumes its TLS session on any of them ([tls]
 * ticket_key_file = FILE). Read at startup and on every reload (SIGHUP);
 * scripts/ticket-keys.sh makes and rotates it.
 *
 *     # comments and blank lines are ignored
 *     # newest key first: it encrypts new tickets; the others (older) still decrypt
 *     1f2e3d4c 9a8b...(64 hex digits)
 *
 * Each key line is 8 hex digits (the 4-byte key name, sent in every
 * ticket) then spaces or tabs then 64 hex digits (the 32-byte AES-256-GCM
 * key); upper or lower case; spaces and tabs may lead and trail. A comment
 * is a line whose first other character is '#'. Lines end in LF or CRLF.
 * The file holds 1 to TKEY_MAX keys, each with its own name, none all
 * zeros, in at most TKEY_FILE_MAX bytes.
 *
 * Loading reports every problem (the first 20 by line, then "... more
 * errors"): a line that is not NAME KEY, a name or key of the wrong length
 * or with a character that is not a hex digit, a name used twice, more
 * than TKEY_MAX keys, no key at all, an all-zero key, a file too large. A
 * file with any problem gives no keys, so a reload with a broken file keeps
 * the keys in force. Messages never show key material (a bad line is
 * described, not quoted); a key name may be shown, it is public.
 *
 * The caller owns every struct tkeys and wipes it with tkey_wipe.
 */
#ifndef MOAT_TKEY_H
#define MOAT_TKEY_H

#include <stddef.h>
#include <stdint.h>

#define TKEY_NAME_LEN 4
#define TKEY_KEY_LEN 32
#define TKEY_MAX 4
#define TKEY_FILE_MAX 8192            /* bytes the file may hold */

struct tkey {
	uint8_t name[TKEY_NAME_LEN];
	uint8_t key[TKEY_KEY_LEN];
};

struct tkeys {
	struct tkey v[TKEY_MAX];          /* v[0] newest: it encrypts new tickets */
	size_t n;                         /* 1..TKEY_MAX after a good parse */
};

/* Parses text[0..len) (file names the file in messages). 0, or -1 with
 * *errors (malloc'd "FILE:LINE: msg\n" lines, "FILE: msg\n" for the whole
 * file; caller frees; NULL only if out of memory); out is zeroed on
 * failure. text is not changed; the caller wipes it. */
int tkey_parse(const char *text, size_t len, const char *file, struct tkeys *out,
               char **errors) __attribute__((warn_unused_result));

/* Reads path (at most TKEY_FILE_MAX bytes) and parses it; the bytes read
 * are wiped (explicit_bzero) before returning. As tkey_parse; an
 * unreadable file is "FILE: cannot read: <strerror>\n". */
int tkey_load(const char *path, struct tkeys *out, char **errors)
	__attribute__((warn_unused_result));

/* Wipes the keys (and n). */
void tkey_wipe(struct tkeys *k);

#endif /* MOAT_TKEY_H */
