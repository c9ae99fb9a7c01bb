/* imap_track: see imap_track.h. */
#include "imap_track.h"

#include <string.h>

uint64_t imap_trailing_literal(const uint8_t *line, size_t n, int *announced)
{
	size_t end = n, i;
	uint64_t v = 0, mul = 1;

	*announced = 0;
	if (end > 0 && line[end - 1] == '\n')
		end--;
	if (end > 0 && line[end - 1] == '\r')
		end--;
	if (end < 3 || line[end - 1] != '}')
		return 0;
	i = end - 1;
	if (i > 0 && line[i - 1] == '+')
		i--;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9') {
		if (mul > 1000000000000ULL)
			return 0;
		v += (uint64_t)(line[i - 1] - '0') * mul;
		mul *= 10;
		i--;
	}
	if (i == 0 || line[i - 1] != '{' || mul == 1)
		return 0;
	*announced = 1;
	return v;
}

/* Keeps the last bytes of a line that goes on in the next feed. */
static void keep_tail(struct imap_track *t, const uint8_t *p, size_t n)
{
	if (n >= IMAP_TRACK_TAIL) {
		memcpy(t->tail, p + n - IMAP_TRACK_TAIL, IMAP_TRACK_TAIL);
		t->tail_len = IMAP_TRACK_TAIL;
		return;
	}
	if (t->tail_len + n > IMAP_TRACK_TAIL) {
		size_t drop = t->tail_len + n - IMAP_TRACK_TAIL;
		memmove(t->tail, t->tail + drop, t->tail_len - drop);
		t->tail_len = (uint8_t)(t->tail_len - drop);
	}
	memcpy(t->tail + t->tail_len, p, n);
	t->tail_len = (uint8_t)(t->tail_len + n);
}

void imap_track_feed(struct imap_track *t, const uint8_t *p, size_t n)
{
	while (n > 0) {
		const uint8_t *nl;
		size_t k;
		int announced;

		if (t->literal_left) {
			k = n < t->literal_left ? n : (size_t)t->literal_left;
			t->literal_left -= k;
			p += k;
			n -= k;
			continue;              /* the response goes on after it */
		}
		nl = memchr(p, '\n', n);
		if (!nl) {
			keep_tail(t, p, n);
			t->mid = 1;
			return;
		}
		k = (size_t)(nl - p) + 1;
		keep_tail(t, p, k);
		t->literal_left = imap_trailing_literal(t->tail, t->tail_len, &announced);
		t->mid = (uint8_t)announced;
		t->tail_len = 0;
		p += k;
		n -= k;
	}
}

int imap_track_at_boundary(const struct imap_track *t)
{
	return !t->mid && t->literal_left == 0;
}
