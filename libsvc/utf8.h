/*
 * utf8.h — library-internal: UTF-8 checks for text that leaves svc (JSON
 * output, error messages), which must stay well-formed whatever came in.
 */
#ifndef SVC_UTF8_H
#define SVC_UTF8_H

#include <stddef.h>

/*
 * Length (1-4) of the well-formed UTF-8 sequence at s, n bytes available;
 * 0 when the bytes there are ill-formed (stray continuation, overlong form,
 * surrogate, above U+10FFFF, or cut short).  n must be at least 1.
 */
size_t svc__utf8_len(const unsigned char *s, size_t n);

/*
 * Makes the NUL-terminated s fit for a one-line message, in place: control
 * characters and bytes of ill-formed UTF-8 (such as a sequence cut by
 * truncation) become '?'.
 */
void svc__one_line(char *s);

#endif
