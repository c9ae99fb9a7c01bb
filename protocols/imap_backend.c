/* imap_backend: see imap_backend.h. */
#include "imap_backend.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bline.h"
#include "sasl.h"

/* Tags moat uses toward the backend. */
#define TAG_CAPA  "M0"
#define TAG_LOGIN "M1"
#define TAG_ID    "M2"
#define TAG_STARTTLS "M3"

/* Longest PLAIN message: authzid NUL authcid NUL passwd. */
#define PLAIN_MAX (3 * IMAP_BL_CRED_MAX + 2)
#define B64_LEN(n) (((n) + 2) / 3 * 4)

#define OUT_CAP sizeof(((struct imap_blogin *)0)->out)
_Static_assert(sizeof "M1 AUTHENTICATE PLAIN " - 1 + B64_LEN(PLAIN_MAX) + 3 <= OUT_CAP,
               "out holds AUTHENTICATE PLAIN with an initial response");
_Static_assert(sizeof "M1 LOGIN {1024+}\r\n {1024+}\r\n\r\n" - 1 + 2 * IMAP_BL_CRED_MAX <= OUT_CAP,
               "out holds LOGIN with two non-synchronizing literals");
_Static_assert(sizeof "M2 ID \r\n" - 1 + IMAP_BL_ID_MAX + sizeof "M1 AUTHENTICATE PLAIN " - 1 +
               B64_LEN(PLAIN_MAX) + 3 <= OUT_CAP, "out holds ID before the login");
_Static_assert(IMAP_BL_CRED_MAX <= 9999, "literal lengths have at most four digits");

enum state {
	S_GREETING = 0,               /* waiting for "* OK" */
	S_CAPA,                       /* sent M0 CAPABILITY, waiting for M0 OK */
	S_STARTTLS,                   /* sent M3 STARTTLS, waiting for M3's status */
	S_TLS,                        /* BL_STARTTLS returned: imap_bl_tls_started next */
	/* from here on the login (and ID with it) went out */
	S_AUTH_CONT,                  /* sent AUTHENTICATE PLAIN, waiting for "+" */
	S_USER_CONT,                  /* sent LOGIN {u}, waiting for "+" */
	S_PASS_CONT,                  /* sent the user name and {p}, waiting for "+" */
	S_RESULT,                     /* everything sent, waiting for M1's status */
	S_DONE,                       /* OK, NO or FAIL returned */
};

/* What a backend line is, by its first bytes. */
enum kind { K_GARBAGE = 0, K_UNTAGGED, K_CONT, K_TAGGED };

/* The word after the tag, case-insensitively. */
enum word { W_OTHER = 0, W_OK, W_NO, W_BAD, W_BYE, W_PREAUTH, W_CAPABILITY };

/* One backend line, split; pointers into b->line. */
struct resp {
	enum kind kind;
	const char *tag;
	size_t tag_len;
	enum word word;
	const char *text;             /* after the word and one space; "" if none */
};

/* Status and response words the login looks at; others are W_OTHER. */
static const struct {
	const char *name;
	enum word word;
} words[] = {
	{ "OK", W_OK },
	{ "NO", W_NO },
	{ "BAD", W_BAD },
	{ "BYE", W_BYE },
	{ "PREAUTH", W_PREAUTH },
	{ "CAPABILITY", W_CAPABILITY },
};

/* Capability names the login looks at, and their IMAP_BL_CAP_* bits. */
static const struct {
	const char *name;
	unsigned bit;
} cap_names[] = {
	{ "AUTH=PLAIN", IMAP_BL_CAP_AUTH_PLAIN },
	{ "SASL-IR", IMAP_BL_CAP_SASL_IR },
	{ "LITERAL+", IMAP_BL_CAP_LITERAL_PLUS },
	{ "LOGINDISABLED", IMAP_BL_CAP_LOGINDISABLED },
	{ "STARTTLS", IMAP_BL_CAP_STARTTLS },
};

int imap_bl_init(struct imap_blogin *b, const char *authzid, size_t authzid_len,
                 const char *user, size_t user_len, const char *pass, size_t pass_len)
{
	memset(b, 0, sizeof *b);
	if (authzid == NULL)
		authzid_len = 0;
	if (authzid_len > IMAP_BL_CRED_MAX || user_len > IMAP_BL_CRED_MAX ||
	    pass_len > IMAP_BL_CRED_MAX) {
		b->state = S_DONE;
		return -1;
	}
	if (authzid_len > 0)
		memcpy(b->authzid, authzid, authzid_len);
	if (user_len > 0)
		memcpy(b->user, user, user_len);
	if (pass_len > 0)
		memcpy(b->pass, pass, pass_len);
	b->authzid_len = authzid_len;
	b->user_len = user_len;
	b->pass_len = pass_len;
	b->state = S_GREETING;
	return 0;
}

int imap_bl_set_id(struct imap_blogin *b, const char *list)
{
	size_t n = strlen(list);

	if (n > IMAP_BL_ID_MAX)
		return -1;
	memcpy(b->id, list, n + 1);
	return 0;
}

void imap_bl_set_starttls(struct imap_blogin *b)
{
	b->starttls = 1;
}

void imap_bl_free(struct imap_blogin *b)
{
	sasl_wipe(b, sizeof *b);
	b->state = S_DONE;            /* a later feed fails instead of logging in */
}

/* Ends the login: keeps the reason (or the backend's text), forgets the
 * password; runs on the byte or line that decided OK, NO or FAIL, and on
 * any feed after that. */
static enum bl_rc finish(struct imap_blogin *b, enum bl_rc rc, const char *text)
{
	size_t n = strlen(text);

	if (n > IMAP_BL_TEXT_MAX)
		n = IMAP_BL_TEXT_MAX;
	memmove(b->text, text, n);
	b->text[n] = '\0';
	sasl_wipe(b->pass, sizeof b->pass);
	b->pass_len = 0;
	b->state = S_DONE;
	return rc;
}

/* The backend's text if it gave one, else a reason of ours; runs when a
 * NO, BAD or BYE ends the login. */
static const char *text_or(const struct resp *r, const char *fallback)
{
	return r->text[0] != '\0' ? r->text : fallback;
}

/* Appends n bytes to the request being built; runs for every piece of
 * every request. Returns 0, or -1 when out is full (the static asserts
 * above say it never is). */
static int out_put(struct imap_blogin *b, const void *p, size_t n)
{
	if (n > sizeof b->out - b->out_len)
		return -1;
	memcpy(b->out + b->out_len, p, n);
	b->out_len += n;
	return 0;
}

/* Appends a NUL-terminated string. */
static int out_str(struct imap_blogin *b, const char *s)
{
	return out_put(b, s, strlen(s));
}

/* Appends a literal's announcement, "{n}" or "{n+}", and its CRLF. */
static int out_literal(struct imap_blogin *b, size_t n, int plus)
{
	char num[32];
	int k = snprintf(num, sizeof num, "{%zu%s}\r\n", n, plus ? "+" : "");

	return out_put(b, num, (size_t)k);
}

/* Appends the base64 PLAIN message "authzid NUL user NUL pass"; runs
 * once per AUTHENTICATE, and wipes the plain copy it builds. */
static int out_plain_b64(struct imap_blogin *b)
{
	uint8_t msg[PLAIN_MAX];
	size_t n = 0, w;

	memcpy(msg + n, b->authzid, b->authzid_len);
	n += b->authzid_len;
	msg[n++] = '\0';
	memcpy(msg + n, b->user, b->user_len);
	n += b->user_len;
	msg[n++] = '\0';
	memcpy(msg + n, b->pass, b->pass_len);
	n += b->pass_len;
	w = sasl_b64_encode(msg, n, (char *)b->out + b->out_len, sizeof b->out - b->out_len);
	sasl_wipe(msg, sizeof msg);
	if (w == 0)
		return -1;
	b->out_len += w;
	return 0;
}

/* Hands the built request to the caller and moves to the state that
 * waits for its answer; runs after every request is built. */
static enum bl_rc send_request(struct imap_blogin *b, int built, enum state next)
{
	if (built != 0) {
		sasl_wipe(b->out, sizeof b->out);
		b->out_len = 0;
		return finish(b, BL_FAIL, "request does not fit the out buffer");
	}
	b->state = next;
	return BL_SEND;
}

/* Does a credential hold a NUL? Neither PLAIN nor an IMAP literal can
 * carry one; checked once, before the first credential is sent. */
static int creds_have_nul(const struct imap_blogin *b)
{
	return memchr(b->authzid, '\0', b->authzid_len) != NULL ||
	       memchr(b->user, '\0', b->user_len) != NULL ||
	       memchr(b->pass, '\0', b->pass_len) != NULL;
}

/* LOGIN with the user name and password as literals: all in one request
 * with LITERAL+, else the first line, each literal after a "+". */
static enum bl_rc start_login(struct imap_blogin *b)
{
	if (b->caps & IMAP_BL_CAP_LITERAL_PLUS) {
		int e = out_str(b, TAG_LOGIN " LOGIN ") || out_literal(b, b->user_len, 1) ||
		        out_put(b, b->user, b->user_len) || out_str(b, " ") ||
		        out_literal(b, b->pass_len, 1) || out_put(b, b->pass, b->pass_len) ||
		        out_str(b, "\r\n");

		return send_request(b, e, S_RESULT);
	}
	return send_request(b, out_str(b, TAG_LOGIN " LOGIN ") || out_literal(b, b->user_len, 0),
	                    S_USER_CONT);
}

/* AUTHENTICATE PLAIN: the response on the command line with SASL-IR,
 * else the command alone and the response after "+". */
static enum bl_rc start_plain(struct imap_blogin *b)
{
	if (b->caps & IMAP_BL_CAP_SASL_IR) {
		int e = out_str(b, TAG_LOGIN " AUTHENTICATE PLAIN ") || out_plain_b64(b) ||
		        out_str(b, "\r\n");

		return send_request(b, e, S_RESULT);
	}
	return send_request(b, out_str(b, TAG_LOGIN " AUTHENTICATE PLAIN\r\n"), S_AUTH_CONT);
}

/* The capabilities learned in clear are known and TLS was asked for:
 * STARTTLS when offered, else nothing goes out (no login in clear). */
static enum bl_rc start_tls(struct imap_blogin *b)
{
	if (!(b->caps & IMAP_BL_CAP_STARTTLS))
		return finish(b, BL_FAIL, "backend does not offer STARTTLS");
	return send_request(b, out_str(b, TAG_STARTTLS " STARTTLS\r\n"), S_STARTTLS);
}

/* The capabilities are known: upgrades to TLS first when asked to, else
 * picks how to log in and sends its first request; runs after the
 * greeting or after M0 OK (once in clear, once more after TLS). */
static enum bl_rc start(struct imap_blogin *b)
{
	if (b->starttls && !b->tls)
		return start_tls(b);
	if (creds_have_nul(b))
		return finish(b, BL_NO, "credentials contain a NUL byte");
	if (b->id[0] && (out_str(b, TAG_ID " ID ") || out_str(b, b->id) || out_str(b, "\r\n")))
		return send_request(b, -1, S_DONE);
	if (b->caps & IMAP_BL_CAP_AUTH_PLAIN)
		return start_plain(b);
	if (b->authzid_len > 0)
		return finish(b, BL_NO, "backend cannot log in as another user");
	if (b->caps & IMAP_BL_CAP_LOGINDISABLED)
		return finish(b, BL_FAIL, "backend advertises LOGINDISABLED");
	return start_login(b);
}

/* Capabilities from a space-separated list ending at `end` or the line's
 * end; runs for a greeting's [CAPABILITY] code and "* CAPABILITY" lines. */
static unsigned parse_caps(const char *p, char end)
{
	unsigned caps = 0;

	while (*p != '\0' && *p != end) {
		size_t n = 0;

		while (p[n] != '\0' && p[n] != end && p[n] != ' ')
			n++;
		for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++)
			if (strlen(cap_names[i].name) == n && strncasecmp(p, cap_names[i].name, n) == 0)
				caps |= cap_names[i].bit;
		p += n;
		if (*p == ' ')
			p++;
	}
	return caps;
}

/* The word after a tag, from the table; runs once per line. */
static enum word parse_word(const char *p, size_t n)
{
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strlen(words[i].name) == n && strncasecmp(p, words[i].name, n) == 0)
			return words[i].word;
	return W_OTHER;
}

/* Splits a complete line (NUL-terminated, without its CRLF) into kind,
 * tag, word and text; runs once per backend line. */
static void parse_resp(const char *line, struct resp *r)
{
	const char *sp, *w, *end;

	memset(r, 0, sizeof *r);
	r->text = "";
	if (line[0] == '+') {
		if (line[1] == '\0' || line[1] == ' ')
			r->kind = K_CONT;
		return;
	}
	sp = strchr(line, ' ');
	if (sp == NULL || sp == line)
		return;
	r->kind = (sp - line == 1 && line[0] == '*') ? K_UNTAGGED : K_TAGGED;
	r->tag = line;
	r->tag_len = (size_t)(sp - line);
	w = sp + 1;
	end = strchr(w, ' ');
	r->word = parse_word(w, end ? (size_t)(end - w) : strlen(w));
	if (end)
		r->text = end + 1;
}

/* Is this the tagged answer to the command sent with tag t? */
static int is_tagged(const struct resp *r, const char *t)
{
	return r->kind == K_TAGGED && r->tag_len == strlen(t) && memcmp(r->tag, t, r->tag_len) == 0;
}

/* A [CAPABILITY ...] response code at the start of a greeting's text:
 * records the capabilities; returns 1 when there was one. */
static int greeting_caps(struct imap_blogin *b, const char *text)
{
	static const char code[] = "[CAPABILITY";
	size_t n = sizeof code - 1;

	if (strncasecmp(text, code, n) != 0 || (text[n] != ' ' && text[n] != ']') ||
	    strchr(text + n, ']') == NULL)
		return 0;
	b->caps = parse_caps(text + n, ']');
	return 1;
}

/* An untagged line while waiting for something else: BYE ends the
 * login, anything else is noise. */
static enum bl_rc on_untagged(struct imap_blogin *b, const struct resp *r)
{
	if (r->word == W_BYE) {
		b->gone = 1;
		return finish(b, BL_FAIL, text_or(r, "backend said BYE"));
	}
	return BL_NEED_MORE;
}

/* The first line from the backend. */
static enum bl_rc on_greeting(struct imap_blogin *b, const struct resp *r)
{
	if (r->kind != K_UNTAGGED)
		return finish(b, BL_FAIL, "unexpected backend greeting");
	if (r->word == W_PREAUTH)
		return finish(b, BL_FAIL, "backend greeted with PREAUTH");
	if (r->word == W_BYE) {
		b->gone = 1;
		return finish(b, BL_FAIL, text_or(r, "backend said BYE"));
	}
	if (r->word != W_OK)
		return finish(b, BL_FAIL, "unexpected backend greeting");
	if (greeting_caps(b, r->text))
		return start(b);
	return send_request(b, out_str(b, TAG_CAPA " CAPABILITY\r\n"), S_CAPA);
}

/* A line after "M0 CAPABILITY": "* CAPABILITY" lines until M0 OK. */
static enum bl_rc on_capa(struct imap_blogin *b, const struct resp *r)
{
	if (r->kind == K_UNTAGGED && r->word == W_CAPABILITY) {
		b->caps |= parse_caps(r->text, '\0');
		return BL_NEED_MORE;
	}
	if (r->kind == K_UNTAGGED)
		return on_untagged(b, r);
	if (is_tagged(r, TAG_CAPA) && r->word == W_OK)
		return start(b);
	if (is_tagged(r, TAG_CAPA) && (r->word == W_NO || r->word == W_BAD))
		return finish(b, BL_FAIL, text_or(r, "backend refused CAPABILITY"));
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* A line after "M3 STARTTLS": untagged noise (BYE ends the login)
 * until M3's status. OK hands the connection to the TLS handshake; any
 * [CAPABILITY] code on it came in clear and is not looked at. */
static enum bl_rc on_starttls(struct imap_blogin *b, const struct resp *r)
{
	if (r->kind == K_UNTAGGED)
		return on_untagged(b, r);
	if (is_tagged(r, TAG_STARTTLS) && r->word == W_OK) {
		b->state = S_TLS;
		return BL_STARTTLS;
	}
	if (is_tagged(r, TAG_STARTTLS) && (r->word == W_NO || r->word == W_BAD))
		return finish(b, BL_FAIL, text_or(r, "backend refused STARTTLS"));
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* M1's tagged answer; ok_done says whether OK may end the login now
 * (not while a "+" is still expected). */
static enum bl_rc on_login_tagged(struct imap_blogin *b, const struct resp *r, int ok_done)
{
	if (r->word == W_OK && ok_done)
		return finish(b, BL_OK, r->text);
	if (r->word == W_NO)
		return finish(b, BL_NO, text_or(r, "backend refused the login"));
	if (r->word == W_BAD)
		return finish(b, BL_FAIL, text_or(r, "backend said BAD"));
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* On "+" after AUTHENTICATE PLAIN: the base64 response line. */
static int out_auth_response(struct imap_blogin *b)
{
	return out_plain_b64(b) || out_str(b, "\r\n");
}

/* On "+" after "LOGIN {u}": the user name and the password's "{p}". */
static int out_user_literal(struct imap_blogin *b)
{
	return out_put(b, b->user, b->user_len) || out_str(b, " ") || out_literal(b, b->pass_len, 0);
}

/* On "+" after "{p}": the password and the command's CRLF. */
static int out_pass_literal(struct imap_blogin *b)
{
	return out_put(b, b->pass, b->pass_len) || out_str(b, "\r\n");
}

/* What goes out on "+" in each waiting state, and what to wait for next. */
static const struct {
	enum state state;
	int (*build)(struct imap_blogin *b);
	enum state next;
} on_plus[] = {
	{ S_AUTH_CONT, out_auth_response, S_RESULT },
	{ S_USER_CONT, out_user_literal, S_PASS_CONT },
	{ S_PASS_CONT, out_pass_literal, S_RESULT },
};

/* A line while waiting for "+" (AUTHENTICATE or a literal). */
static enum bl_rc on_cont(struct imap_blogin *b, const struct resp *r)
{
	if (r->kind == K_CONT) {
		for (size_t i = 0; i < sizeof on_plus / sizeof on_plus[0]; i++)
			if (on_plus[i].state == b->state)
				return send_request(b, on_plus[i].build(b), on_plus[i].next);
	}
	if (r->kind == K_UNTAGGED)
		return on_untagged(b, r);
	if (is_tagged(r, TAG_LOGIN))
		return on_login_tagged(b, r, 0);
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* A line after the whole login went out: untagged noise until M1's status. */
static enum bl_rc on_result(struct imap_blogin *b, const struct resp *r)
{
	if (r->kind == K_UNTAGGED)
		return on_untagged(b, r);
	if (is_tagged(r, TAG_LOGIN))
		return on_login_tagged(b, r, 1);
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* The handler of a complete line in each state before S_DONE. */
static enum bl_rc (*const on_line[])(struct imap_blogin *, const struct resp *) = {
	[S_GREETING] = on_greeting,
	[S_CAPA] = on_capa,
	[S_STARTTLS] = on_starttls,
	[S_AUTH_CONT] = on_cont,
	[S_USER_CONT] = on_cont,
	[S_PASS_CONT] = on_cont,
	[S_RESULT] = on_result,
};

/* A complete line is in b->line (its LF not stored): strips the CR,
 * hands it to the current state, starts the next line. */
static enum bl_rc line_done(struct imap_blogin *b)
{
	struct resp r;
	enum bl_rc rc;

	bline_end(b->line, &b->line_len);
	parse_resp(b->line, &r);
	if (b->id[0] && b->state >= S_AUTH_CONT && is_tagged(&r, TAG_ID))
		rc = BL_NEED_MORE;          /* ID's answer: whatever it is */
	else
		rc = on_line[b->state](b, &r);
	b->line_len = 0;
	return rc;
}

/* Stores one byte of a line (not its LF); runs for every such byte.
 * Returns NEED_MORE, or FAIL for a NUL, a CR not before LF or a line
 * over IMAP_BL_LINE_MAX (a final CR may take the spare byte). */
static enum bl_rc line_byte(struct imap_blogin *b, uint8_t c)
{
	const char *why = bline_byte(b->line, &b->line_len, IMAP_BL_LINE_MAX, c);

	return why ? finish(b, BL_FAIL, why) : BL_NEED_MORE;
}

enum bl_rc imap_bl_feed(struct imap_blogin *b, const uint8_t *buf, size_t len,
                             size_t *used)
{
	/* what the last SEND asked for was written by now */
	sasl_wipe(b->out, b->out_len);
	b->out_len = 0;
	*used = 0;
	if (b->state >= S_DONE)
		return finish(b, BL_FAIL, "the backend login has ended");
	if (b->state == S_TLS && len > 0)
		return finish(b, BL_FAIL, "backend sent bytes in clear after STARTTLS");
	for (size_t i = 0; i < len; i++) {
		enum bl_rc rc = buf[i] == '\n' ? line_done(b) : line_byte(b, buf[i]);

		if (rc != BL_NEED_MORE) {
			*used = i + 1;
			return rc;
		}
	}
	*used = len;
	return BL_NEED_MORE;
}

enum bl_rc imap_bl_tls_started(struct imap_blogin *b)
{
	sasl_wipe(b->out, b->out_len);
	b->out_len = 0;
	if (b->state != S_TLS)
		return finish(b, BL_FAIL, "TLS started without STARTTLS");
	/* RFC 3501 6.2.1: what the backend said in clear is forgotten */
	b->tls = 1;
	b->caps = 0;
	return send_request(b, out_str(b, TAG_CAPA " CAPABILITY\r\n"), S_CAPA);
}
