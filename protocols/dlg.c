/* dlg: what the IMAP and POP3 dialogues share, see dlg.h. */
#include "dlg.h"

#include <stdio.h>

void dlg_putv(char *out, size_t size, size_t *len, const char *fmt, va_list ap)
{
	int n;

	if (*len >= size - 1)
		return;
	n = vsnprintf(out + *len, size - *len, fmt, ap);
	if (n > 0)
		*len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}
