/* libsvc/meta.c — metadata maps.  See svc/meta.h. */
#include "svc/meta.h"
#include "svc/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static svc_meta_pair *s_find(const svc_meta *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->pairs[i].key, key) == 0)
            return &m->pairs[i];
    return NULL;
}

int svc_meta_set(svc_meta *m, const char *key, const char *value)
{
    svc_meta_pair *p = s_find(m, key);
    char *v = strdup(value ? value : "");
    if (!v)
        return -ENOMEM;
    if (p) {
        free(p->value);
        p->value = v;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4;
        svc_meta_pair *np = realloc(m->pairs, cap * sizeof *np);
        if (!np)
            goto out_free_value;
        m->pairs = np;
        m->cap = cap;
    }
    m->pairs[m->n].key = strdup(key);
    if (!m->pairs[m->n].key)
        goto out_free_value;
    m->pairs[m->n].value = v;
    m->n++;
    return 0;

out_free_value:
    free(v);
    return -ENOMEM;
}

const char *svc_meta_get(const svc_meta *m, const char *key)
{
    svc_meta_pair *p = s_find(m, key);
    return p ? p->value : NULL;
}

void svc_meta_del(svc_meta *m, const char *key)
{
    svc_meta_pair *p = s_find(m, key);
    if (!p)
        return;
    free(p->key);
    free(p->value);
    size_t i = (size_t)(p - m->pairs);
    memmove(p, p + 1, (m->n - i - 1) * sizeof *p);
    m->n--;
}

int svc_meta_merge(svc_meta *dst, const svc_meta *src)
{
    for (size_t i = 0; i < src->n; i++) {
        int rc = svc_meta_set(dst, src->pairs[i].key, src->pairs[i].value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int svc_meta_parse(svc_meta *m, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return SVC_EINVAL;
    char *key = strndup(kv, (size_t)(eq - kv));
    if (!key)
        return -ENOMEM;
    int rc = svc_meta_set(m, key, eq + 1);
    free(key);
    return rc;
}

void svc_meta_release(svc_meta *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->pairs[i].key);
        free(m->pairs[i].value);
    }
    free(m->pairs);
    m->pairs = NULL;
    m->n = m->cap = 0;
}
