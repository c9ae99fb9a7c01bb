/*
 * fuzz_preauth: libFuzzer target for the whole pre-auth state machine
 * (protocols/imap.c, pop3.c, their parsers, imap_backend.c,
 * pop3_backend.c, sasl.c), driven the way proxy/preauth.c drives it,
 * with the backend simulated by the input; plus imap_capf.c and the two
 * capability filters on the backend's bytes.
 *
 * Input format. The first byte picks the listener:
 *   0x01 POP3 (else IMAP)           0x20 max_command 1024 (else 8192)
 *   0x02 tls = starttls             0x40 a few passed-through capabilities
 *   0x04 TLS already active         0x80 a capability list of ~1 KiB
 *   0x18 max_auth_failures - 1
 * (implicit TLS listeners always start with TLS active). The rest is a
 * stream of chunks, client bytes first; 0xFF escapes:
 *   FF 'C'    a client chunk starts    FF 'B'    a backend chunk starts
 *   FF 'X'    the backend goes away    FF 'R'    moat refuses the login
 *   FF 'N' k  repeat the chunk's last byte (k + 1) * 32 times
 *   FF FF     one 0xFF byte            FF other  nothing
 *
 * The session: the greeting, then client chunks go to *_dlg_feed from a
 * pending buffer, re-fed from buf + used; DLG_REPLY goes on,
 * DLG_STARTTLS drops what follows and starts TLS at once, DLG_CLOSE ends
 * the dialogue, DLG_LOGIN starts a backend login with the dialogue's
 * credentials and feeds it backend chunks until OK, NO or FAIL (or 'X',
 * 'R', or the end of the input) and then tells the dialogue with
 * *_dlg_login_done; client bytes arriving meanwhile wait. Every backend
 * chunk also goes through three imap_capf filters (split as the chunks
 * are, byte by byte, whole at the end) and the two capability filters.
 *
 * Invariants (abort on failure): out and out_len in bounds, replies end
 * in CRLF with no bare CR or LF and no NUL; nothing to send with DLG_NONE
 * or DLG_LOGIN; *used within the buffer and progress on every call; a
 * bounded number of calls; STARTTLS only in clear on a STARTTLS
 * listener, and there never LOGIN nor a "+" that invites credentials;
 * after STARTTLS nothing of before left (parser buffer and state,
 * credentials); the parser's buffer wiped after credentials; credentials
 * within their caps; on the backend's OK, what moat sent it carried them
 * whole; the backend machine wipes the password when it ends and
 * everything on imap_bl_free / pop3_bl_free, then refuses to go on; the
 * dialogue's credentials all zero after *_dlg_login_done and
 * *_dlg_free; no password of 8 or more bytes (without CR or LF) in a
 * reply, unless it is protocol text: the reply's lines (IMAP tags
 * removed) are compared with every line the dialogues can say, gathered
 * at start-up by running canned sessions through the same code, with the
 * lines this session said before, and with the parser's current error
 * message. The OK after a backend login is not checked: it repeats the
 * backend's own text by design. The capability filter's three runs
 * agree; without "capability" in the stream it changes nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "imap.h"
#include "imap_backend.h"
#include "imap_capf.h"
#include "pop3.h"
#include "pop3_backend.h"
#include "sasl.h"

#define ESC          0xFF
#define ARENA_MAX    (64 * 1024)      /* chunk bytes of one input */
#define PENDING_MAX  (128 * 1024)     /* as proxy/preauth.c */
#define MAX_WATCH    8                /* passwords looked for in replies */

#define M_POP3       0x01
#define M_STARTTLS   0x02
#define M_TLS_ACTIVE 0x04
#define M_FAIL_SHIFT 3
#define M_SMALL      0x20
#define M_CAPS       0x40
#define M_LONG_CAPS  0x80

/* ---- protocol text: every line the dialogues may say ---- */

#define TEXT_CAP   (512 * 1024)
#define SET_SIZE   8192                /* a power of two */
#define SET_LIMIT  (SET_SIZE / 2)

/* Distinct reply lines (tags removed), newline-separated in blob; those
 * from the canned sessions come first and stay, the rest are this
 * input's and are dropped at its end. */
static struct {
	char blob[TEXT_CAP];
	size_t len, ref_len;
	uint64_t set[SET_SIZE];           /* line hashes, 0 = empty slot */
	size_t used[SET_LIMIT];           /* slots filled by this input */
	size_t n, nused;
	int full;                         /* no room: secrets go unchecked */
} texts;

FZ_NOCOV static uint64_t line_key(const char *s, size_t n)
{
	return fz_hash(FZ_HASH_INIT, s, n) | 1;
}

/* Remembers a reply line as protocol text. */
static void text_add(const char *s, size_t n, int reference)
{
	uint64_t k = line_key(s, n);
	size_t i = (size_t)k & (SET_SIZE - 1);

	while (texts.set[i] != 0) {
		if (texts.set[i] == k)
			return;
		i = (i + 1) & (SET_SIZE - 1);
	}
	if (texts.n >= SET_LIMIT || texts.len + n + 1 > sizeof texts.blob) {
		CHECK(!reference);            /* the canned sessions must fit */
		texts.full = 1;
		return;
	}
	texts.set[i] = k;
	texts.n++;
	if (!reference)
		texts.used[texts.nused++] = i;
	memcpy(texts.blob + texts.len, s, n);
	texts.blob[texts.len + n] = '\n';
	texts.len += n + 1;
}

/* Forgets the lines of the last input, keeps the canned ones. */
static void texts_reset(void)
{
	for (size_t i = 0; i < texts.nused; i++)
		texts.set[texts.used[i]] = 0;
	texts.n -= texts.nused;
	texts.nused = 0;
	texts.len = texts.ref_len;
	texts.full = 0;
}

/* ---- the simulated session ---- */

union blogin {
	struct imap_blogin imap;
	struct pop3_blogin pop3;
};

struct watch {
	char v[DLG_CRED_MAX];
	size_t len;
};

struct sim {
	int pop3;
	struct dlg_cfg cfg;
	union {
		struct imap_dlg imap;
		struct pop3_dlg pop3;
	} d;
	union blogin *bl;
	int tls, closed, in_login, reference;
	uint8_t *pending;
	size_t pending_len, pending_cap;
	struct watch watch[MAX_WATCH];
	size_t nwatch;
	uint8_t *sent;                    /* what this login sent the backend */
	size_t sent_len;
	int bytewise;                     /* deliver each chunk a byte at a time */
	unsigned tls_epoch, login_epoch;  /* STARTTLS and logins so far */
	uint64_t transcript;              /* everything said, in order */
	size_t steps, max_steps;
};

static char caps_long_imap[DLG_CAPS_MAX], caps_long_pop3[DLG_CAPS_MAX];

/* The dialogue's reply buffer. */
static const char *dlg_out(struct sim *s, size_t *len, size_t *cap)
{
	if (s->pop3) {
		*len = s->d.pop3.out_len;
		*cap = sizeof s->d.pop3.out;
		return s->d.pop3.out;
	}
	*len = s->d.imap.out_len;
	*cap = sizeof s->d.imap.out;
	return s->d.imap.out;
}

static struct dlg_cred *dlg_cred(struct sim *s)
{
	return s->pop3 ? &s->d.pop3.cred : &s->d.imap.cred;
}

/* Adds what the session did to its transcript. */
static void record(struct sim *s, int what, const void *p, size_t n)
{
	s->transcript = fz_hash_u64(s->transcript, (uint64_t)what);
	s->transcript = fz_hash(s->transcript, p, n);
}

/* The parser's storage is all zero: nothing of a command survives. */
static void check_parser_wiped(struct sim *s)
{
	const struct imap_parser *ip = &s->d.imap.p;
	const struct pop3_parser *pp = &s->d.pop3.p;

	if (s->pop3)
		CHECK(fz_all_zero(pp->buf, (size_t)pp->max_line + 1));
	else
		CHECK(fz_all_zero(ip->data, (size_t)ip->max_cmd + IMAP_ARGS_MAX + 1));
}

/* The parser's error text, if its last result was a refusal. */
static const char *parser_error(struct sim *s)
{
	return s->pop3 ? s->d.pop3.p.error : s->d.imap.p.error;
}

/* May a password found in this line be protocol text? */
static int excused(struct sim *s, const struct watch *w)
{
	static const char *const prefixes[] = { "BAD ", "BYE ", "-ERR " };
	const char *e = parser_error(s);
	char tmp[512];

	if (fz_contains(texts.blob, texts.len, w->v, w->len))
		return 1;
	for (size_t i = 0; e && i < sizeof prefixes / sizeof *prefixes; i++) {
		size_t n = (size_t)snprintf(tmp, sizeof tmp, "%s%s", prefixes[i], e);
		if (fz_contains(tmp, n < sizeof tmp ? n : sizeof tmp - 1, w->v, w->len))
			return 1;
	}
	return 0;
}

/* A reply about to be sent: bounds, line ends, and no password in it. */
static void check_reply(struct sim *s, int secrets)
{
	size_t len, cap, start = 0;
	const char *out = dlg_out(s, &len, &cap);

	CHECK(len < cap);
	if (len == 0)
		return;
	record(s, 'r', out, len);
	CHECK(len >= 2 && out[len - 2] == '\r' && out[len - 1] == '\n');
	CHECK(memchr(out, '\0', len) == NULL);
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '\r')
			CHECK(out[i + 1] == '\n');       /* out[len - 1] is '\n' */
		if (out[i] == '\n')
			CHECK(i > 0 && out[i - 1] == '\r');
	}
	while (start < len) {
		const char *nl = memchr(out + start, '\n', len - start);
		const char *line = out + start;
		size_t n;

		CHECK(nl != NULL);
		n = (size_t)(nl - line) - 1;
		start = (size_t)(nl - out) + 1;
		if (!s->tls && s->cfg.starttls && n >= 1 && line[0] == '+' &&
		    (n == 1 || line[1] == ' ')) {
			/* in clear, never a "+" that invites credentials */
			CHECK(!s->pop3);
			CHECK(strcmp(s->d.imap.p.name, "LOGIN") != 0 &&
			      strcmp(s->d.imap.p.name, "AUTHENTICATE") != 0);
		}
		if (!s->pop3) {
			/* IMAP: the tag (or "*", "+") is the client's own text */
			const char *sp = memchr(line, ' ', n);
			size_t skip = sp ? (size_t)(sp - line) + 1 : n;
			line += skip;
			n -= skip;
		}
		for (size_t i = 0; secrets && !texts.full && i < s->nwatch; i++)
			if (fz_contains(line, n, s->watch[i].v, s->watch[i].len))
				CHECK(excused(s, &s->watch[i]));
		text_add(line, n, s->reference);
	}
}

/* The dialogue asked to log in: its credentials are complete and
 * bounded, the parser no longer holds them. */
static void check_cred(struct sim *s)
{
	const struct dlg_cred *c = dlg_cred(s);

	CHECK(c->mech != NULL);
	CHECK(c->user_len > 0 && c->user_len <= DLG_CRED_MAX && c->user[c->user_len] == '\0');
	CHECK(c->pass_len <= DLG_CRED_MAX && c->pass[c->pass_len] == '\0');
	CHECK(c->authzid_len <= DLG_CRED_MAX && c->authzid[c->authzid_len] == '\0');
	check_parser_wiped(s);
}

/* Remembers a password long enough to be told apart from protocol text. */
static void watch_password(struct sim *s)
{
	const struct dlg_cred *c = dlg_cred(s);

	if (c->pass_len < 8 || s->nwatch >= MAX_WATCH || memchr(c->pass, '\r', c->pass_len) ||
	    memchr(c->pass, '\n', c->pass_len))
		return;
	memcpy(s->watch[s->nwatch].v, c->pass, c->pass_len);
	s->watch[s->nwatch].len = c->pass_len;
	s->nwatch++;
}

/* Keeps what the backend login sends, to check it at BL_OK. */
static void sent_add(struct sim *s, const uint8_t *p, size_t n)
{
	s->sent = realloc(s->sent, s->sent_len + n);
	CHECK(s->sent != NULL);
	memcpy(s->sent + s->sent_len, p, n);
	s->sent_len += n;
}

/* Forgets it (it held the password). */
static void sent_clear(struct sim *s)
{
	if (s->sent)
		memset(s->sent, 0, s->sent_len);
	free(s->sent);
	s->sent = NULL;
	s->sent_len = 0;
}

static void process(struct sim *s);

/* The backend login ended (or never could go on): tell the dialogue. */
static void login_done(struct sim *s, enum dlg_login r, const char *text)
{
	enum dlg_act act;

	if (s->pop3)
		act = pop3_dlg_login_done(&s->d.pop3, r, text);
	else
		act = imap_dlg_login_done(&s->d.imap, r, text);
	CHECK(act == DLG_REPLY || act == DLG_CLOSE);
	CHECK(r != DLG_LOGIN_OK || act == DLG_REPLY);
	record(s, 'd', &r, sizeof r);
	CHECK(fz_all_zero(dlg_cred(s), sizeof *dlg_cred(s)));
	check_reply(s, r != DLG_LOGIN_OK);
	s->in_login = 0;
	if (r == DLG_LOGIN_OK || act == DLG_CLOSE) {
		s->closed = 1;                /* relay, or the end */
		return;
	}
	process(s);
}

/* Frees the backend machine: it must have wiped everything (its state
 * aside), and must refuse to be fed afterwards. */
static void bl_end(struct sim *s)
{
	union blogin *b = s->bl;
	size_t used = 1;
	unsigned st;
	enum bl_rc rc;

	if (s->pop3) {
		pop3_bl_free(&b->pop3);
		st = b->pop3.state;
		b->pop3.state = 0;
		CHECK(fz_all_zero(&b->pop3, sizeof b->pop3));
		b->pop3.state = st;
		rc = pop3_bl_feed(&b->pop3, (const uint8_t *)"+OK\r\n", 5, &used);
	} else {
		imap_bl_free(&b->imap);
		st = b->imap.state;
		b->imap.state = 0;
		CHECK(fz_all_zero(&b->imap, sizeof b->imap));
		b->imap.state = st;
		rc = imap_bl_feed(&b->imap, (const uint8_t *)"* OK\r\n", 6, &used);
	}
	CHECK(rc == BL_FAIL && used == 0);
	free(b);
	s->bl = NULL;
}

/* The dialogue gave credentials: start the backend login with them. */
static void start_login(struct sim *s)
{
	const struct dlg_cred *c = dlg_cred(s);
	int rc;

	check_cred(s);
	watch_password(s);
	s->bl = malloc(sizeof *s->bl);
	CHECK(s->bl != NULL);
	if (s->pop3)
		rc = pop3_bl_init(&s->bl->pop3, c->authzid, c->authzid_len, c->user, c->user_len,
		                  c->pass, c->pass_len);
	else
		rc = imap_bl_init(&s->bl->imap, c->authzid, c->authzid_len, c->user, c->user_len,
		                  c->pass, c->pass_len);
	CHECK(rc == 0);
	s->in_login = 1;
	s->login_epoch++;
}

/* Ends the backend login with a result of the session's own ('X', 'R',
 * the end of the input). */
static void login_abort(struct sim *s, enum dlg_login r)
{
	if (!s->in_login)
		return;
	sent_clear(s);
	bl_end(s);
	login_done(s, r, "");
}

/* Feeds pending client bytes to the dialogue, as proxy/preauth.c does. */
static void process(struct sim *s)
{
	while (!s->closed && !s->in_login && s->pending_len > 0) {
		size_t used = (size_t)-1, len = s->pending_len, out_len, cap;
		enum dlg_act act;
		int secure = s->tls || !s->cfg.starttls;

		if (s->pop3)
			act = pop3_dlg_feed(&s->d.pop3, s->pending, len, &used);
		else
			act = imap_dlg_feed(&s->d.imap, s->pending, len, &used);
		CHECK(++s->steps <= s->max_steps);
		CHECK(used <= len);
		(void)dlg_out(s, &out_len, &cap);
		if (act == DLG_NONE || act == DLG_LOGIN)
			CHECK(out_len == 0);  /* the session sends nothing then */
		else
			CHECK(out_len > 0 && used > 0);
		if (act == DLG_NONE)
			CHECK(used == len);
		check_reply(s, 1);
		if (act != DLG_NONE)
			record(s, 'a', &act, sizeof act);
		memmove(s->pending, s->pending + used, len - used);
		memset(s->pending + len - used, 0, used);
		s->pending_len -= used;
		switch (act) {
		case DLG_NONE:
		case DLG_REPLY:
			break;
		case DLG_STARTTLS:
			CHECK(s->cfg.starttls && !s->tls);
			memset(s->pending, 0, s->pending_len);  /* nothing in clear survives */
			s->pending_len = 0;
			s->tls = 1;
			s->tls_epoch++;
			if (s->pop3)
				pop3_dlg_tls_started(&s->d.pop3);
			else
				imap_dlg_tls_started(&s->d.imap);
			check_parser_wiped(s);
			CHECK(fz_all_zero(dlg_cred(s), sizeof *dlg_cred(s)));
			if (s->pop3)
				CHECK(!s->d.pop3.p.line_mode && s->d.pop3.p.len == 0 &&
				      !s->d.pop3.have_user);
			else
				CHECK(!s->d.imap.p.line_mode && s->d.imap.p.used == 0 &&
				      s->d.imap.p.line_len == 0 && s->d.imap.p.taglen == 0);
			break;
		case DLG_LOGIN:
			CHECK(secure);
			start_login(s);
			return;
		case DLG_CLOSE:
			s->closed = 1;
			return;
		default:
			CHECK(!"dialogue action");
		}
	}
}

/* Client bytes arrived in one read. */
static void client_read(struct sim *s, const uint8_t *p, size_t n)
{
	uint8_t *m;

	if (s->closed || n == 0)
		return;
	if (s->pending_len + n > PENDING_MAX) {
		s->closed = 1;                /* "too much input before login" */
		return;
	}
	if (s->pending_len + n > s->pending_cap) {
		/* grown by doubling: byte-at-a-time reads would make it quadratic */
		size_t cap = s->pending_cap ? 2 * s->pending_cap : 256;
		while (cap < s->pending_len + n)
			cap *= 2;
		m = realloc(s->pending, cap);
		CHECK(m != NULL);
		s->pending = m;
		s->pending_cap = cap;
	}
	memcpy(s->pending + s->pending_len, p, n);
	s->pending_len += n;
	process(s);
}

/* A client chunk: one read, or (bytewise) one read per byte; what
 * followed STARTTLS in the same read is gone either way. */
static void client_chunk(struct sim *s, const uint8_t *p, size_t n)
{
	unsigned epoch = s->tls_epoch;

	if (!s->bytewise) {
		client_read(s, p, n);
		return;
	}
	for (size_t i = 0; i < n && s->tls_epoch == epoch; i++)
		client_read(s, p + i, 1);
}

/* The backend machine's result, checked. */
static enum bl_rc bl_feed(struct sim *s, const uint8_t *p, size_t len, size_t *used)
{
	enum bl_rc rc;
	size_t out_len, cap, text_cap;
	const char *text;
	const uint8_t *out;

	if (s->pop3) {
		rc = pop3_bl_feed(&s->bl->pop3, p, len, used);
		out = s->bl->pop3.out;
		out_len = s->bl->pop3.out_len;
		cap = sizeof s->bl->pop3.out;
		text = s->bl->pop3.text;
		text_cap = sizeof s->bl->pop3.text;
	} else {
		rc = imap_bl_feed(&s->bl->imap, p, len, used);
		out = s->bl->imap.out;
		out_len = s->bl->imap.out_len;
		cap = sizeof s->bl->imap.out;
		text = s->bl->imap.text;
		text_cap = sizeof s->bl->imap.text;
	}
	CHECK(*used <= len);
	CHECK(rc == BL_NEED_MORE ? *used == len : *used > 0);
	CHECK(out_len <= cap);
	if (rc == BL_SEND)
		CHECK(out_len >= 3 && out[out_len - 2] == '\r' && out[out_len - 1] == '\n');
	else
		CHECK(out_len == 0);
	CHECK(memchr(text, '\0', text_cap) != NULL);
	return rc;
}

/* The backend said OK: what went out carried the client's credentials,
 * whole: "authzid NUL user NUL pass" in base64 (AUTHENTICATE / AUTH
 * PLAIN), or the user name and password themselves (LOGIN literals,
 * USER/PASS; never with an authzid, which they cannot carry). */
static void check_sent(struct sim *s)
{
	const struct dlg_cred *c = dlg_cred(s);
	uint8_t msg[3 * DLG_CRED_MAX + 2];
	char b64[4 * (3 * DLG_CRED_MAX + 2) / 3 + 8];
	size_t n = 0, b;

	memcpy(msg, c->authzid, c->authzid_len);
	n += c->authzid_len;
	msg[n++] = '\0';
	memcpy(msg + n, c->user, c->user_len);
	n += c->user_len;
	msg[n++] = '\0';
	memcpy(msg + n, c->pass, c->pass_len);
	n += c->pass_len;
	b = sasl_b64_encode(msg, n, b64, sizeof b64);
	CHECK(b > 0);
	if (fz_contains(s->sent, s->sent_len, b64, b))
		return;
	CHECK(c->authzid_len == 0);
	CHECK(fz_contains(s->sent, s->sent_len, c->user, c->user_len));
	CHECK(fz_contains(s->sent, s->sent_len, c->pass, c->pass_len));
}

/* Ends the login with the backend's verdict. */
static void login_result(struct sim *s, enum bl_rc rc)
{
	char text[IMAP_BL_TEXT_MAX + 1];
	const char *bt = s->pop3 ? s->bl->pop3.text : s->bl->imap.text;

	/* whatever the verdict, the machine forgot the password */
	if (s->pop3)
		CHECK(s->bl->pop3.pass_len == 0 &&
		      fz_all_zero(s->bl->pop3.pass, sizeof s->bl->pop3.pass));
	else
		CHECK(s->bl->imap.pass_len == 0 &&
		      fz_all_zero(s->bl->imap.pass, sizeof s->bl->imap.pass));
	CHECK(strlen(bt) <= IMAP_BL_TEXT_MAX && strlen(bt) <= POP3_BL_TEXT_MAX);
	snprintf(text, sizeof text, "%s", bt);
	if (rc == BL_OK)
		check_sent(s);
	sent_clear(s);
	bl_end(s);
	switch (rc) {
	case BL_OK:
		login_done(s, DLG_LOGIN_OK, text);
		break;
	case BL_NO:
		login_done(s, DLG_LOGIN_FAILED, text);
		break;
	default:
		login_done(s, DLG_LOGIN_UNAVAILABLE, "");  /* as preauth_backend_failed */
		break;
	}
}

/* Backend bytes while the login runs; with no login they go nowhere. */
static void backend_login(struct sim *s, const uint8_t *p, size_t len)
{
	size_t off = 0;

	if (!s->in_login)
		return;
	do {
		size_t used = (size_t)-1;
		enum bl_rc rc = bl_feed(s, p + off, len - off, &used);

		CHECK(++s->steps <= s->max_steps);
		off += used;
		switch (rc) {
		case BL_NEED_MORE:
			return;
		case BL_SEND: {
			/* written to the backend, then wiped, as preauth.c does */
			uint8_t *out = s->pop3 ? s->bl->pop3.out : s->bl->imap.out;
			size_t *out_len = s->pop3 ? &s->bl->pop3.out_len : &s->bl->imap.out_len;
			sent_add(s, out, *out_len);
			record(s, 's', out, *out_len);
			memset(out, 0, *out_len);
			break;
		}
		case BL_OK:
		case BL_NO:
		case BL_FAIL:
			login_result(s, rc);
			return;           /* the rest belongs to the relay, or is dropped */
		default:
			CHECK(!"backend login result");
		}
	} while (off < len);
}

/* A backend chunk for the login: one read, or (bytewise) one per byte;
 * what followed the login's result in the same read is gone either way. */
static void backend_chunk(struct sim *s, const uint8_t *p, size_t n)
{
	unsigned epoch = s->login_epoch;

	if (!s->bytewise) {
		backend_login(s, p, n);
		return;
	}
	for (size_t i = 0; i < n && s->in_login && s->login_epoch == epoch; i++)
		backend_login(s, p + i, 1);
}

/* ---- the backend's bytes through the capability filters ---- */

struct sink {
	uint8_t *buf;
	size_t len, cap;
	size_t calls, fail_at;            /* fail the fail_at-th emit (0: never) */
};

FZ_NOCOV static int emit(void *ctx, const uint8_t *p, size_t n)
{
	struct sink *k = ctx;

	if (++k->calls == k->fail_at)
		return -7;
	if (k->len + n > k->cap) {
		size_t cap = k->cap ? k->cap : 4096;
		while (cap < k->len + n)
			cap *= 2;
		k->buf = realloc(k->buf, cap);
		CHECK(k->buf != NULL);
		k->cap = cap;
	}
	if (n)
		memcpy(k->buf + k->len, p, n);
	k->len += n;
	return 0;
}

struct capf_runs {
	struct imap_capf chunked, bytes;
	struct sink chunked_out, bytes_out;
	struct sink stream;               /* everything the backend sent */
};

/* One backend chunk through the filters fed as it comes and byte by byte,
 * and through the one-shot capability filters. */
static void capf_chunk(struct capf_runs *c, const uint8_t *p, size_t n)
{
	char out[DLG_CAPS_MAX], small[8];
	size_t r;

	CHECK(imap_capf_feed(&c->chunked, p, n, emit, &c->chunked_out) == 0);
	for (size_t i = 0; i < n; i++)
		CHECK(imap_capf_feed(&c->bytes, p + i, 1, emit, &c->bytes_out) == 0);
	CHECK(emit(&c->stream, p, n) == 0);

	/* (a NUL in the input may end the written list early) */
	r = imap_caps_filter((const char *)p, n, (int)(n & 1), out, sizeof out);
	CHECK(r < sizeof out && out[r] == '\0' && r <= n);
	r = imap_caps_filter((const char *)p, n, (int)(~n & 1), small, sizeof small);
	CHECK(r < sizeof small && small[r] == '\0');
	r = pop3_caps_filter((const char *)p, n, out, sizeof out);
	CHECK(r < sizeof out && out[r] == '\0' && strlen(out) == r);
	for (size_t i = 0; i < r; i++)
		CHECK((out[i] >= 0x20 && out[i] <= 0x7e) ||
		      (out[i] == '\r' && out[i + 1] == '\n') ||
		      (out[i] == '\n' && i > 0 && out[i - 1] == '\r'));
	CHECK(r == 0 || (r >= 3 && out[r - 2] == '\r' && out[r - 1] == '\n'));
	r = pop3_caps_filter((const char *)p, n, small, sizeof small);
	CHECK(r < sizeof small && small[r] == '\0');
	CHECK(pop3_caps_filter((const char *)p, n, small, 0) == 0);
}

/* Case-insensitively (by hand: strncasecmp would be intercepted at every
 * offset). */
FZ_NOCOV static int has_capability_word(const uint8_t *p, size_t n)
{
	static const char word[] = "capability";

	for (size_t i = 0; i + sizeof word - 1 <= n; i++) {
		size_t k = 0;
		while (k < sizeof word - 1 && (p[i + k] | 0x20) == word[k])
			k++;
		if (k == sizeof word - 1)
			return 1;
	}
	return 0;
}

/* The end of the stream: the runs agree, and a stream that never says
 * "capability" passes unchanged up to its last line end. */
static void capf_finish(struct capf_runs *c)
{
	struct imap_capf whole, failing;
	struct sink whole_out = { 0 }, fail_out = { 0 };
	const uint8_t *s = c->stream.buf;
	size_t n = c->stream.len, last_lf = 0;
	int rc;

	memset(&whole, 0, sizeof whole);
	memset(&failing, 0, sizeof failing);
	CHECK(imap_capf_feed(&whole, s, n, emit, &whole_out) == 0);
	CHECK(whole_out.len == c->chunked_out.len && whole_out.len == c->bytes_out.len);
	CHECK(whole_out.len == 0 ||
	      (memcmp(whole_out.buf, c->chunked_out.buf, whole_out.len) == 0 &&
	       memcmp(whole_out.buf, c->bytes_out.buf, whole_out.len) == 0));
	CHECK(whole_out.len <= n);
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			last_lf = i + 1;
	if (!has_capability_word(s, n)) {
		CHECK(whole_out.len >= last_lf);
		CHECK(whole_out.len == 0 || memcmp(whole_out.buf, s, whole_out.len) == 0);
	}
	/* an emit failure comes back as the feed's result */
	fail_out.fail_at = 1 + n % 5;
	rc = imap_capf_feed(&failing, s, n, emit, &fail_out);
	CHECK(rc == 0 || rc == -7);
	CHECK((rc == -7) == (fail_out.calls >= fail_out.fail_at));
	imap_capf_free(&whole);
	imap_capf_free(&failing);
	CHECK(whole.hold == NULL && failing.hold == NULL);
	free(whole_out.buf);
	free(fail_out.buf);
}

static void capf_free(struct capf_runs *c)
{
	imap_capf_free(&c->chunked);
	imap_capf_free(&c->bytes);
	free(c->chunked_out.buf);
	free(c->bytes_out.buf);
	free(c->stream.buf);
}

/* ---- the input ---- */

enum kind { K_CLIENT, K_BACKEND, K_GONE, K_REFUSED };

struct item {
	enum kind kind;
	size_t off, len;
};

struct script {
	uint8_t *arena;
	size_t alen, acap;
	struct item *items;
	size_t nitems;
};

FZ_NOCOV static void arena_put(struct script *sc, uint8_t c)
{
	if (sc->alen == sc->acap) {
		if (sc->acap >= ARENA_MAX)
			return;
		sc->acap *= 2;
		sc->arena = realloc(sc->arena, sc->acap);
		CHECK(sc->arena != NULL);
	}
	sc->arena[sc->alen++] = c;
}

/* Ends the chunk being collected (empty client chunks are nothing). */
static void close_chunk(struct script *sc, enum kind kind, size_t *start)
{
	if (sc->alen > *start || kind == K_BACKEND)
		sc->items[sc->nitems++] = (struct item){ kind, *start, sc->alen - *start };
	*start = sc->alen;
}

/* Splits the input (after the mode byte) into chunks and events. */
static void parse_script(const uint8_t *in, size_t len, struct script *sc)
{
	enum kind kind = K_CLIENT;
	size_t start = 0;

	sc->acap = 256;
	sc->alen = sc->nitems = 0;
	sc->arena = malloc(sc->acap);
	sc->items = malloc((len + 2) * sizeof *sc->items);
	CHECK(sc->arena != NULL && sc->items != NULL);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i], d;

		if (c != ESC || i + 1 == len) {
			arena_put(sc, c);
			continue;
		}
		d = in[++i];
		switch (d) {
		case ESC:
			arena_put(sc, ESC);
			break;
		case 'C':
		case 'B':
			close_chunk(sc, kind, &start);
			kind = d == 'C' ? K_CLIENT : K_BACKEND;
			break;
		case 'X':
		case 'R':
			close_chunk(sc, kind, &start);
			sc->items[sc->nitems++] =
				(struct item){ d == 'X' ? K_GONE : K_REFUSED, 0, 0 };
			break;
		case 'N':
			if (i + 1 < len) {
				uint8_t last = sc->alen > start ? sc->arena[sc->alen - 1] : 'A';
				size_t times = ((size_t)in[++i] + 1) * 32;
				for (size_t k = 0; k < times; k++)
					arena_put(sc, last);
			}
			break;
		default:
			break;
		}
	}
	close_chunk(sc, kind, &start);
}

/* Runs one session over the input and returns its transcript;
 * reference: gathering protocol text; bytewise: see client_chunk. */
static uint64_t run(const uint8_t *data, size_t size, int reference, int bytewise)
{
	struct sim *s;
	struct script sc;
	struct capf_runs *capf;
	uint8_t mode;
	int rc;

	uint64_t transcript;

	if (size == 0)
		return 0;
	mode = data[0];
	parse_script(data + 1, size - 1, &sc);
	s = calloc(1, sizeof *s);
	capf = calloc(1, sizeof *capf);
	CHECK(s != NULL && capf != NULL);
	s->reference = reference;
	s->bytewise = bytewise;
	s->transcript = FZ_HASH_INIT;
	s->pop3 = mode & M_POP3;
	s->cfg.greeting = s->pop3 ? "POP3 server ready" : "IMAP server ready";
	s->cfg.caps_extra = "";
	if (mode & M_LONG_CAPS)
		s->cfg.caps_extra = s->pop3 ? caps_long_pop3 : caps_long_imap;
	else if (mode & M_CAPS)
		s->cfg.caps_extra = s->pop3 ? "TOP\r\nUIDL\r\nEXPIRE NEVER\r\n"
		                            : "IDLE ENABLE UIDPLUS";
	s->cfg.max_command = mode & M_SMALL ? 1024 : 8192;
	s->cfg.max_auth_failures = 1 + ((mode >> M_FAIL_SHIFT) & 3);
	s->cfg.starttls = (mode & M_STARTTLS) != 0;
	s->tls = !s->cfg.starttls || (mode & M_TLS_ACTIVE);
	s->max_steps = 4 * (sc.alen + sc.nitems) + 64;

	if (s->pop3) {
		rc = pop3_dlg_init(&s->d.pop3, &s->cfg, s->tls);
		pop3_dlg_greeting(&s->d.pop3);
	} else {
		rc = imap_dlg_init(&s->d.imap, &s->cfg, s->tls);
		imap_dlg_greeting(&s->d.imap);
	}
	CHECK(rc == 0);
	check_reply(s, 0);
	CHECK(s->pop3 ? s->d.pop3.out_len > 0 : s->d.imap.out_len > 0);

	for (size_t i = 0; i < sc.nitems; i++) {
		const struct item *it = &sc.items[i];
		const uint8_t *p = sc.arena + it->off;

		switch (it->kind) {
		case K_CLIENT:
			client_chunk(s, p, it->len);
			break;
		case K_BACKEND:
			if (!bytewise)
				capf_chunk(capf, p, it->len);
			backend_chunk(s, p, it->len);
			break;
		case K_GONE:
			login_abort(s, DLG_LOGIN_UNAVAILABLE);
			break;
		case K_REFUSED:
			login_abort(s, DLG_LOGIN_REFUSED);
			break;
		}
	}
	/* the input ended: a login still running times out (and the
	 * dialogue may start another one with what was waiting) */
	while (s->in_login)
		login_abort(s, DLG_LOGIN_UNAVAILABLE);

	if (s->pop3)
		pop3_dlg_free(&s->d.pop3);
	else
		imap_dlg_free(&s->d.imap);
	CHECK(fz_all_zero(dlg_cred(s), sizeof *dlg_cred(s)));
	if (!bytewise)
		capf_finish(capf);
	capf_free(capf);
	free(capf);
	free(s->pending);
	transcript = s->transcript;
	free(s);
	free(sc.arena);
	free(sc.items);
	return transcript;
}

/* ---- the canned sessions behind the protocol text ---- */

#define S(x) { x, sizeof(x) - 1 }

static const struct {
	const char *in;
	size_t len;
} canned_imap[] = {
	S("a CAPABILITY\r\na NOOP\r\na ID NIL\r\na ID 1\r\na SELECT INBOX\r\na XYZZY\r\n"
	  "a NOOP 1\r\na LOGIN {1}\r\nx y\r\na LOGIN \"\" x\r\na LOGIN u (x)\r\n"
	  "a AUTHENTICATE X\r\na AUTHENTICATE PLAIN\r\n*\r\na AUTHENTICATE PLAIN\r\n!\r\n"
	  "a AUTHENTICATE PLAIN !\r\na AUTHENTICATE LOGIN\r\n*\r\n"
	  "a AUTHENTICATE LOGIN\r\ndQ==\r\n!\r\na AUTHENTICATE LOGIN !\r\n"
	  "a AUTHENTICATE (x)\r\na STARTTLS\r\na CAPABILITY\r\na STARTTLS\r\n"
	  "a LOGIN {1}\r\nx y\r\na LOGOUT\r\n"),
	S("a STARTTLS\r\n\xff" "Ca LOGIN u p\r\n\xff" "B* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n"
	  "M1 NO no\r\n\xff" "Ca LOGIN u p\r\n\xff" "X\xff" "Ca LOGIN u p\r\n\xff" "R"
	  "\xff" "Ca LOGIN u p\r\n\xff" "B* BYE\r\n\xff" "Ca LOGIN u p\r\n\xff" "B* OK\r\n"
	  "M0 OK\r\nM1 NO no\r\n\xff" "Ca LOGIN u p\r\n\xff" "B* OK\r\nM0 OK\r\nM1 NO no\r\n"
	  "\xff" "Ca LOGIN u p\r\n\xff" "B* OK\r\nM0 OK\r\nM1 NO no\r\n"),
	S("a STARTTLS\r\n\xff" "Ca LOGIN u p\r\n\xff" "B* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n"
	  "M1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"),
	S("a STARTTLS\r\n\xff" "Ca LOGIN u p\r\n\xff" "B* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n"
	  "M1 OK\r\n"),
	S("a b\r\na b\r\na b\r\na b\r\na b\r\na b\r\na b\r\na b\r\na b\r\na b\r\n"),
	/* every "wrong number of arguments" and "not allowed before login" */
	S("a CAPABILITY 1\r\na LOGOUT 1\r\na ID\r\na STARTTLS 1\r\na LOGIN\r\n"
	  "a AUTHENTICATE\r\na SELECT\r\na EXAMINE\r\na CREATE\r\na DELETE\r\n"
	  "a RENAME\r\na SUBSCRIBE\r\na UNSUBSCRIBE\r\na LIST\r\na LSUB\r\n"
	  "a NAMESPACE\r\na STATUS\r\na APPEND\r\na IDLE\r\na ENABLE\r\na CHECK\r\n"
	  "a CLOSE\r\na UNSELECT\r\na EXPUNGE\r\na SEARCH\r\na FETCH\r\na STORE\r\n"
	  "a COPY\r\na MOVE\r\na UID\r\na GETQUOTA\r\na GETQUOTAROOT\r\na GETACL\r\n"
	  "a MYRIGHTS\r\na COMPRESS\r\na NOTIFY\r\na GETMETADATA\r\na SETMETADATA\r\n"
	  "a XLIST\r\n"),
};

static const struct {
	const char *in;
	size_t len;
} canned_pop3[] = {
	S("CAPA\r\nUSER u\r\nPASS p\r\nAUTH\r\nAUTH X\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN !\r\n"
	  "AUTH PLAIN\r\n!\r\nAPOP a b\r\nSTAT\r\nNOOP\r\nXYZ\r\nCAPA x\r\nUSER\r\nSTLS\r\n"
	  "CAPA\r\nSTLS\r\nPASS p\r\nAUTH\r\nAUTH X\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN !\r\n"
	  "QUIT\r\n"),
	S("STLS\r\n\xff" "CUSER u\r\nPASS p\r\n\xff" "B+OK\r\n-ERR\r\n+OK\r\n-ERR no\r\n"
	  "\xff" "CUSER u\r\nPASS p\r\n\xff" "X\xff" "CUSER u\r\nPASS p\r\n\xff" "R"
	  "\xff" "CUSER u\r\nPASS p\r\n\xff" "B-ERR\r\n\xff" "CUSER u\r\nPASS p\r\n"
	  "\xff" "B+OK\r\n-ERR\r\n+OK\r\n-ERR no\r\n\xff" "CUSER u\r\nPASS p\r\n"
	  "\xff" "B+OK\r\n-ERR\r\n+OK\r\n-ERR no\r\n"),
	S("STLS\r\n\xff" "CUSER u\r\nPASS p\r\n\xff" "B+OK\r\n-ERR\r\n+OK\r\n+OK Logged in\r\n"),
	S("STLS\r\n\xff" "CUSER u\r\nPASS p\r\n\xff" "B+OK\r\n-ERR\r\n+OK\r\n+OK\r\n"),
	S("X\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\n"),
	S("STAT\r\nLIST\r\nRETR\r\nDELE\r\nRSET\r\nTOP\r\nUIDL\r\nLAST\r\nSTLS 1\r\n"
	  "QUIT 1\r\nSTLS\r\nUSER\r\nPASS\r\n"),
};

/* Runs the canned sessions under every listener setting, once. */
static void build_reference(void)
{
	static int done;
	static const uint8_t modes[] = {
		0, M_STARTTLS, M_STARTTLS | M_TLS_ACTIVE, M_CAPS, M_STARTTLS | M_CAPS,
		M_STARTTLS | M_TLS_ACTIVE | M_CAPS, M_LONG_CAPS, M_STARTTLS | M_LONG_CAPS,
	};
	char src[2048];
	size_t n = 0;
	uint8_t buf[1024];

	if (done)
		return;
	done = 1;
	/* long capability lists, cut to fit by the filters moat uses */
	for (unsigned i = 0; i < 150; i++)
		n += (size_t)snprintf(src + n, sizeof src - n, "X-CAP-%03u ", i);
	imap_caps_filter(src, n, 1, caps_long_imap, sizeof caps_long_imap);
	for (size_t i = 0; i < n; i++)
		if (src[i] == ' ')
			src[i] = '\n';
	pop3_caps_filter(src, n, caps_long_pop3, sizeof caps_long_pop3);

	for (size_t m = 0; m < sizeof modes; m++) {
		for (unsigned f = 0; f < 4; f++) {
			for (size_t i = 0; i < sizeof canned_imap / sizeof *canned_imap; i++) {
				buf[0] = (uint8_t)(modes[m] | f << M_FAIL_SHIFT);
				memcpy(buf + 1, canned_imap[i].in, canned_imap[i].len);
				(void)run(buf, canned_imap[i].len + 1, 1, 0);
			}
			for (size_t i = 0; i < sizeof canned_pop3 / sizeof *canned_pop3; i++) {
				buf[0] = (uint8_t)(modes[m] | M_POP3 | f << M_FAIL_SHIFT);
				memcpy(buf + 1, canned_pop3[i].in, canned_pop3[i].len);
				(void)run(buf, canned_pop3[i].len + 1, 1, 0);
			}
		}
	}
	texts.ref_len = texts.len;
	texts.nused = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	build_reference();
	texts_reset();
	/* TCP may cut the client's and the backend's bytes anywhere: the
	 * session must say the same either way */
	CHECK(run(data, size, 0, 0) == run(data, size, 0, 1));
	return 0;
}
