/* bline: see bline.h. */
#include "bline.h"

const char *bline_byte(char *line, size_t *len, size_t max, uint8_t c)
{
	if (c == '\0')
		return "backend sent a NUL byte";
	if (*len > 0 && line[*len - 1] == '\r')
		return "backend sent a CR without LF";
	if (*len >= max && !(*len == max && c == '\r'))
		return "backend line too long";
	line[(*len)++] = (char)c;
	return NULL;
}

void bline_end(char *line, size_t *len)
{
	if (*len > 0 && line[*len - 1] == '\r')
		(*len)--;
	line[*len] = '\0';
}
