/* libsvc/topic.c — topic validation and NATS-style wildcard matching. */
#include "topic.h"

#include <string.h>

static bool s_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == ':' || c == '$';
}

bool svc__topic_valid(const char *s, size_t len, bool wildcards)
{
    if (len == 0 || len > SVC__TOPIC_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        size_t n = i - start;
        if (n == 0)
            return false;
        if (n == 1 && (s[start] == '*' || s[start] == '>')) {
            if (!wildcards || (s[start] == '>' && i != len))
                return false;
        } else {
            for (size_t j = start; j < i; j++)
                if (!s_token_char((unsigned char)s[j]))
                    return false;
        }
        start = i + 1;
    }
    return true;
}

bool svc__topic_match(const char *p, const char *t, size_t len)
{
    const char *end = t + len;
    for (;;) {
        const char *pe = strchr(p, '.');
        size_t pn = pe ? (size_t)(pe - p) : strlen(p);
        if (t >= end)
            return false;            /* pattern has more tokens than the topic */
        const char *te = memchr(t, '.', (size_t)(end - t));
        size_t tn = te ? (size_t)(te - t) : (size_t)(end - t);
        if (pn == 1 && p[0] == '>')
            return true;             /* one or more remaining tokens: we have at least one */
        if (!(pn == 1 && p[0] == '*') && (pn != tn || memcmp(p, t, pn) != 0))
            return false;
        if (!pe)
            return !te;              /* both end here */
        if (!te)
            return false;            /* topic ended, pattern goes on */
        p = pe + 1;
        t = te + 1;
    }
}
