/* tests/unit/testlib.c — see testlib.h. */
#include "testlib.h"

#include <stdarg.h>
#include <stdio.h>

static const char *s_current;
static int s_failed_checks;

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s: %s:%d: ", s_current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    s_failed_checks++;
}

static bool s_selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

int test_main(const char *suite, const test_case *tests, int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (const test_case *t = tests; t->name; t++) {
        if (!s_selected(t->name, argc, argv))
            continue;
        s_current = t->name;
        s_failed_checks = 0;
        t->fn();
        if (s_failed_checks) {
            failed++;
        } else {
            passed++;
            fprintf(stderr, "ok   %s\n", t->name);
        }
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed ? 1 : 0;
}
