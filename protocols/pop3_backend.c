/* pop3_backend: see pop3_backend.h. */
#include "pop3_backend.h"

#include <string.h>
#include <strings.h>

#include "bline.h"
#include "sasl.h"

/* Longest PLAIN message: authzid NUL user NUL password. */
#define PLAIN_MAX (3 * DLG_CRED_MAX + 2)
#define B64_LEN(n) (((n) + 2) / 3 * 4)

/* RFC 2449 section 4: a command line is at most 255 octets with its
 * CRLF; RFC 5034 section 4: an initial response that would make AUTH
 * longer is not sent on the command line but after "+ ". */
#define CMD_LINE_MAX 255

#define OUT_CAP sizeof(((struct pop3_blogin *)0)->out)
_Static_assert(sizeof "AUTH PLAIN " - 1 + B64_LEN(PLAIN_MAX) + 3 <= OUT_CAP,
               "out holds AUTH PLAIN with the largest initial response and a NUL");
_Static_assert(sizeof "USER \r\n" - 1 + DLG_CRED_MAX <= OUT_CAP, "out holds USER");
_Static_assert(sizeof "PASS \r\n" - 1 + DLG_CRED_MAX <= OUT_CAP, "out holds PASS");

enum state {
	S_GREETING = 0,               /* waiting for "+OK" */
	S_CAPA,                       /* sent CAPA, waiting for its status line */
	S_CAPA_LIST,                  /* "+OK" came: capability lines until "." */
	S_AUTH_IR,                    /* sent AUTH PLAIN <response> */
	S_AUTH_CMD,                   /* sent AUTH PLAIN alone, waiting for "+" */
	S_AUTH_RESP,                  /* sent the response after "+" */
	S_AUTH_CANCEL,                /* "+" came after the initial response: sent "*" */
	S_USER,                       /* sent USER */
	S_PASS,                       /* sent PASS */
	S_XCLIENT,                    /* sent XCLIENT */
	S_STLS,                       /* sent STLS, waiting for its answer */
	S_TLS,                        /* BL_STARTTLS returned: pop3_bl_tls_started next */
	S_DONE,                       /* OK, NO or FAIL returned */
};

/* What a status line is, by its first word (case-insensitive). */
enum word { W_OTHER = 0, W_OK, W_ERR, W_CONT };

/* One backend line, split; pointers into b->line. */
struct resp {
	const char *line;             /* the whole line, for CAPA's list */
	enum word word;
	const char *text;             /* after the word and one space; "" if none */
};

/* Status words; "+" alone is a SASL continuation (RFC 5034). */
static const struct {
	const char *name;
	enum word word;
} words[] = {
	{ "+OK", W_OK },
	{ "-ERR", W_ERR },
	{ "+", W_CONT },
};

/* Response codes (RFC 2449 section 8, RFC 3206) that say the backend
 * cannot serve now rather than that the credentials are wrong; matched
 * on the code's first component, so "[SYS/TEMP]" and "[SYS/PERM]" both. */
static const char *const unavailable_codes[] = { "SYS", "IN-USE" };

int pop3_bl_init(struct pop3_blogin *b, const char *authzid, size_t authzid_len,
                 const char *user, size_t user_len, const char *pass, size_t pass_len)
{
	memset(b, 0, sizeof *b);
	if (authzid == NULL)
		authzid_len = 0;
	if (authzid_len > DLG_CRED_MAX || user_len > DLG_CRED_MAX || pass_len > DLG_CRED_MAX) {
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

int pop3_bl_set_xclient(struct pop3_blogin *b, const char *args)
{
	size_t n = strlen(args);

	if (n > POP3_BL_XCLIENT_MAX)
		return -1;
	memcpy(b->xclient, args, n + 1);
	return 0;
}

void pop3_bl_set_starttls(struct pop3_blogin *b)
{
	b->starttls = 1;
}

void pop3_bl_free(struct pop3_blogin *b)
{
	sasl_wipe(b, sizeof *b);
	b->state = S_DONE;            /* a later feed fails instead of logging in */
}

/* Forgets the password; runs once it went into its last request, and on
 * every end of the login. */
static void forget_pass(struct pop3_blogin *b)
{
	sasl_wipe(b->pass, sizeof b->pass);
	b->pass_len = 0;
}

/* Ends the login with rc and a text (the backend's or a reason of ours,
 * cut at POP3_BL_TEXT_MAX); runs on the byte or line that decided. */
static enum bl_rc finish(struct pop3_blogin *b, enum bl_rc rc, const char *text)
{
	size_t n = strlen(text);

	if (n > POP3_BL_TEXT_MAX)
		n = POP3_BL_TEXT_MAX;
	memmove(b->text, text, n);
	b->text[n] = '\0';
	forget_pass(b);
	b->state = S_DONE;
	return rc;
}

/* The backend's text if it gave one, else a reason of ours. */
static const char *text_or(const struct resp *r, const char *fallback)
{
	return r->text[0] != '\0' ? r->text : fallback;
}

/* Appends n bytes to the request being built. Returns 0, or -1 when out
 * is full (the static asserts above say it never is). */
static int out_put(struct pop3_blogin *b, const void *p, size_t n)
{
	if (n > sizeof b->out - b->out_len)
		return -1;
	memcpy(b->out + b->out_len, p, n);
	b->out_len += n;
	return 0;
}

/* Appends a NUL-terminated string. */
static int out_str(struct pop3_blogin *b, const char *s)
{
	return out_put(b, s, strlen(s));
}

/* Length of the PLAIN message "authzid NUL user NUL password". */
static size_t plain_len(const struct pop3_blogin *b)
{
	return b->authzid_len + 1 + b->user_len + 1 + b->pass_len;
}

/* Appends the PLAIN message in base64; builds the plain copy on the
 * stack and wipes it. */
static int out_plain_b64(struct pop3_blogin *b)
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

/* Hands the built request to the caller and waits for its answer in
 * state next; runs after every request is built. */
static enum bl_rc send_request(struct pop3_blogin *b, int built, enum state next)
{
	if (built != 0) {
		sasl_wipe(b->out, sizeof b->out);
		b->out_len = 0;
		return finish(b, BL_FAIL, "request does not fit the out buffer");
	}
	b->state = next;
	return BL_SEND;
}

/* Is any of the n bytes at p one of the setlen bytes of set (which may
 * hold a NUL)? */
static int has_any(const char *p, size_t n, const char *set, size_t setlen)
{
	for (size_t i = 0; i < setlen; i++)
		if (memchr(p, set[i], n) != NULL)
			return 1;
	return 0;
}

/* AUTH PLAIN: the response on the command line when the line stays
 * within CMD_LINE_MAX, else the command alone and the response after
 * "+ "; the password is forgotten once it is in out for the last time. */
static enum bl_rc start_plain(struct pop3_blogin *b)
{
	enum bl_rc rc;

	if (sizeof "AUTH PLAIN " - 1 + B64_LEN(plain_len(b)) + 2 > CMD_LINE_MAX)
		return send_request(b, out_str(b, "AUTH PLAIN\r\n"), S_AUTH_CMD);
	rc = send_request(b, out_str(b, "AUTH PLAIN ") || out_plain_b64(b) || out_str(b, "\r\n"),
	                  S_AUTH_IR);
	forget_pass(b);
	return rc;
}

/* USER with the name; the password waits for its "+OK". */
static enum bl_rc start_user(struct pop3_blogin *b)
{
	return send_request(b, out_str(b, "USER ") || out_put(b, b->user, b->user_len) ||
	                    out_str(b, "\r\n"), S_USER);
}

/* CAPA's answer in clear is known and TLS was asked for: STLS when
 * offered, else nothing goes out (no login in clear). */
static enum bl_rc start_tls(struct pop3_blogin *b)
{
	if (!b->cap_stls)
		return finish(b, BL_FAIL, "backend does not offer STLS");
	return send_request(b, out_str(b, "STLS\r\n"), S_STLS);
}

/* The capabilities are known: upgrades to TLS first when asked to, else
 * picks how to log in and sends its first request; runs after CAPA's
 * list or its "-ERR" (once in clear, once more after TLS), and after
 * XCLIENT's answer. */
static enum bl_rc start(struct pop3_blogin *b)
{
	if (b->starttls && !b->tls)
		return start_tls(b);
	if (b->xclient[0] && (b->cap_xclient || b->greet_xclient) && !b->xclient_done) {
		b->xclient_done = 1;
		return send_request(b, out_str(b, "XCLIENT ") || out_str(b, b->xclient) ||
		                    out_str(b, "\r\n"), S_XCLIENT);
	}
	if (b->sasl_plain) {
		if (memchr(b->authzid, '\0', b->authzid_len) || memchr(b->user, '\0', b->user_len) ||
		    memchr(b->pass, '\0', b->pass_len))
			return finish(b, BL_NO, "credentials contain a NUL byte");
		return start_plain(b);
	}
	if (b->authzid_len > 0)
		return finish(b, BL_NO, "backend cannot log in as another user");
	if (has_any(b->user, b->user_len, " \r\n\0", 4))
		return finish(b, BL_NO, "user name cannot be sent with USER");
	if (has_any(b->pass, b->pass_len, "\r\n\0", 3))
		return finish(b, BL_NO, "password cannot be sent with PASS");
	return start_user(b);
}

/* Splits a complete line (NUL-terminated, without its line end) into its
 * status word and text; runs once per backend line. */
static void parse_resp(const char *line, struct resp *r)
{
	size_t n = strcspn(line, " ");

	r->line = line;
	r->word = W_OTHER;
	r->text = line[n] == ' ' ? line + n + 1 : "";
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strlen(words[i].name) == n && strncasecmp(line, words[i].name, n) == 0)
			r->word = words[i].word;
}

/* Does an "-ERR" text start with a code saying the backend is
 * unavailable ("[SYS/TEMP] ...", "[IN-USE] ...")? */
static int unavailable(const char *text)
{
	size_t n;

	if (text[0] != '[' || strchr(text, ']') == NULL)
		return 0;
	text++;
	n = strcspn(text, "/]");
	for (size_t i = 0; i < sizeof unavailable_codes / sizeof unavailable_codes[0]; i++)
		if (strlen(unavailable_codes[i]) == n && strncasecmp(text, unavailable_codes[i], n) == 0)
			return 1;
	return 0;
}

/* "-ERR" to USER, PASS or AUTH: refused, or unavailable by its code. */
static enum bl_rc on_refused(struct pop3_blogin *b, const struct resp *r)
{
	if (unavailable(r->text)) {
		b->gone = strncasecmp(r->text, "[SYS/TEMP]", 10) == 0;
		return finish(b, BL_FAIL, r->text);
	}
	return finish(b, BL_NO, text_or(r, "backend refused the login"));
}

/* The first line from the backend: "+OK" asks for CAPA. */
static enum bl_rc on_greeting(struct pop3_blogin *b, const struct resp *r)
{
	if (r->word == W_ERR) {
		b->gone = 1;
		return finish(b, BL_FAIL, text_or(r, "backend refused the connection"));
	}
	if (r->word != W_OK)
		return finish(b, BL_FAIL, "unexpected backend greeting");
	/* Dovecot tells trusted clients "+OK [XCLIENT] ..." and keeps XCLIENT
	 * out of CAPA; asking for it needlessly is harmless either way */
	if (r->text[0] == '[') {
		size_t n = strcspn(r->text, "]");
		for (const char *t = r->text + 1; t < r->text + n; t += strcspn(t, " ]"), t += *t == ' ')
			if (strncasecmp(t, "XCLIENT", 7) == 0 && (t[7] == ' ' || t[7] == ']'))
				b->greet_xclient = 1;
	}
	return send_request(b, out_str(b, "CAPA\r\n"), S_CAPA);
}

/* CAPA's status line: "+OK" starts the list, "-ERR" means none. */
static enum bl_rc on_capa(struct pop3_blogin *b, const struct resp *r)
{
	if (r->word == W_OK) {
		b->state = S_CAPA_LIST;
		return BL_NEED_MORE;
	}
	if (r->word == W_ERR)
		return start(b);
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* A "SASL" capability's arguments: notes PLAIN among the mechanisms. */
static void cap_sasl(struct pop3_blogin *b, const char *args)
{
	while (*args != '\0') {
		size_t n = strcspn(args, " ");

		if (n == 5 && strncasecmp(args, "PLAIN", 5) == 0)
			b->sasl_plain = 1;
		args += n;
		args += strspn(args, " ");
	}
}

/* An "XCLIENT" capability: the backend takes the client's address. */
static void cap_xclient(struct pop3_blogin *b, const char *args)
{
	(void)args;
	b->cap_xclient = 1;
}

/* An "STLS" capability: the backend can upgrade to TLS. */
static void cap_stls(struct pop3_blogin *b, const char *args)
{
	(void)args;
	b->cap_stls = 1;
}

/* Capabilities the login looks at, and what reads their arguments. */
static const struct {
	const char *name;
	void (*take)(struct pop3_blogin *b, const char *args);
} cap_names[] = {
	{ "SASL", cap_sasl },
	{ "XCLIENT", cap_xclient },
	{ "STLS", cap_stls },
};

/* One line of CAPA's list: "." ends it; a line starting with another
 * "." lost one to byte-stuffing (RFC 1939 section 3). */
static enum bl_rc on_capa_list(struct pop3_blogin *b, const struct resp *r)
{
	const char *p = r->line;
	size_t n;

	if (strcmp(p, ".") == 0)
		return start(b);
	if (p[0] == '.')
		p++;
	n = strcspn(p, " ");
	for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++)
		if (strlen(cap_names[i].name) == n && strncasecmp(p, cap_names[i].name, n) == 0)
			cap_names[i].take(b, p + n + strspn(p + n, " "));
	return BL_NEED_MORE;
}

/* "+OK" to USER: the password goes out, then is forgotten here. */
static enum bl_rc ok_user(struct pop3_blogin *b, const struct resp *r)
{
	enum bl_rc rc = send_request(b, out_str(b, "PASS ") || out_put(b, b->pass, b->pass_len) ||
	                             out_str(b, "\r\n"), S_PASS);

	forget_pass(b);
	return rc;
}

/* "+OK" to the last credential: logged in. */
static enum bl_rc ok_done(struct pop3_blogin *b, const struct resp *r)
{
	return finish(b, BL_OK, r->text);
}

/* "+" to AUTH PLAIN alone: the base64 response line. */
static enum bl_rc cont_response(struct pop3_blogin *b, const struct resp *r)
{
	enum bl_rc rc = send_request(b, out_plain_b64(b) || out_str(b, "\r\n"), S_AUTH_RESP);

	forget_pass(b);
	return rc;
}

/* "+" after an initial response: the backend wants it again, which
 * moat does not do; cancels the exchange (RFC 5034 "*"). */
static enum bl_rc cont_cancel(struct pop3_blogin *b, const struct resp *r)
{
	forget_pass(b);
	return send_request(b, out_str(b, "*\r\n"), S_AUTH_CANCEL);
}

/* A status line where no such answer fits. */
static enum bl_rc unexpected(struct pop3_blogin *b, const struct resp *r)
{
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* The answers to each credential-carrying request: "+OK", "+", and
 * "-ERR" (always on_refused); anything else is unexpected. */
static const struct {
	enum state state;
	enum bl_rc (*ok)(struct pop3_blogin *, const struct resp *);
	enum bl_rc (*cont)(struct pop3_blogin *, const struct resp *);
} answers[] = {
	{ S_AUTH_IR, ok_done, cont_cancel },
	{ S_AUTH_CMD, unexpected, cont_response },
	{ S_AUTH_RESP, ok_done, unexpected },
	{ S_USER, ok_user, unexpected },
	{ S_PASS, ok_done, unexpected },
};

/* A line answering USER, PASS or AUTH. */
static enum bl_rc on_answer(struct pop3_blogin *b, const struct resp *r)
{
	if (r->word == W_ERR)
		return on_refused(b, r);
	for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
		if (answers[i].state != b->state)
			continue;
		if (r->word == W_OK)
			return answers[i].ok(b, r);
		if (r->word == W_CONT)
			return answers[i].cont(b, r);
	}
	return unexpected(b, r);
}

/* The answer to "*": whatever it is, the login failed. */
static enum bl_rc on_cancelled(struct pop3_blogin *b, const struct resp *r)
{
	return finish(b, BL_FAIL, "backend does not accept AUTH PLAIN initial response");
}

/* XCLIENT's answer: "+OK", or "-ERR" (the backend keeps the address it
 * sees); the login goes on either way. */
static enum bl_rc on_xclient(struct pop3_blogin *b, const struct resp *r)
{
	if (r->word != W_OK && r->word != W_ERR)
		return finish(b, BL_FAIL, "unexpected backend line");
	return start(b);
}

/* STLS's answer: "+OK" hands the connection to the TLS handshake,
 * "-ERR" ends the login. */
static enum bl_rc on_stls(struct pop3_blogin *b, const struct resp *r)
{
	if (r->word == W_OK) {
		b->state = S_TLS;
		return BL_STARTTLS;
	}
	if (r->word == W_ERR)
		return finish(b, BL_FAIL, text_or(r, "backend refused STLS"));
	return finish(b, BL_FAIL, "unexpected backend line");
}

/* The handler of a complete line in each state before S_DONE. */
static enum bl_rc (*const on_line[])(struct pop3_blogin *, const struct resp *) = {
	[S_GREETING] = on_greeting,
	[S_CAPA] = on_capa,
	[S_CAPA_LIST] = on_capa_list,
	[S_AUTH_IR] = on_answer,
	[S_AUTH_CMD] = on_answer,
	[S_AUTH_RESP] = on_answer,
	[S_AUTH_CANCEL] = on_cancelled,
	[S_USER] = on_answer,
	[S_PASS] = on_answer,
	[S_XCLIENT] = on_xclient,
	[S_STLS] = on_stls,
};

/* A complete line is in b->line (its LF not stored): strips the CR,
 * hands it to the current state, starts the next line. */
static enum bl_rc line_done(struct pop3_blogin *b)
{
	struct resp r;
	enum bl_rc rc;

	bline_end(b->line, &b->line_len);
	parse_resp(b->line, &r);
	rc = on_line[b->state](b, &r);
	b->line_len = 0;
	return rc;
}

/* Stores one byte of a line (not its LF). Returns NEED_MORE, or FAIL for
 * a NUL, a CR not before LF or a line over POP3_BL_LINE_MAX (a final CR
 * may take the spare byte). */
static enum bl_rc line_byte(struct pop3_blogin *b, uint8_t c)
{
	const char *why = bline_byte(b->line, &b->line_len, POP3_BL_LINE_MAX, c);

	return why ? finish(b, BL_FAIL, why) : BL_NEED_MORE;
}

enum bl_rc pop3_bl_feed(struct pop3_blogin *b, const uint8_t *buf, size_t len, size_t *used)
{
	/* what the last SEND asked for was written by now */
	sasl_wipe(b->out, b->out_len);
	b->out_len = 0;
	*used = 0;
	if (b->state >= S_DONE)
		return finish(b, BL_FAIL, "the backend login has ended");
	if (b->state == S_TLS && len > 0)
		return finish(b, BL_FAIL, "backend sent bytes in clear after STLS");
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

enum bl_rc pop3_bl_tls_started(struct pop3_blogin *b)
{
	sasl_wipe(b->out, b->out_len);
	b->out_len = 0;
	if (b->state != S_TLS)
		return finish(b, BL_FAIL, "TLS started without STLS");
	/* RFC 2595 section 4: what CAPA said in clear is forgotten */
	b->tls = 1;
	b->sasl_plain = 0;
	b->cap_xclient = 0;
	b->cap_stls = 0;
	return send_request(b, out_str(b, "CAPA\r\n"), S_CAPA);
}
