/*
 * tests/unit/testlib.h — the unit-test harness.
 *
 * A test file defines functions with TEST(name) and lists them in a table:
 *
 *     TEST(json_roundtrip) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *     static const test_case tests[] = { T(json_roundtrip), { NULL, NULL } };
 *     int main(int argc, char **argv) { return test_main("codec", tests, argc, argv); }
 *
 * test_main runs each test (or only those named on the command line), prints
 * "FAIL name: file:line: expr" for every failed check, and ends with one line
 * "<suite>: N passed, N failed" counting tests.  Exit status 1 if any failed.
 */
#ifndef SVC_TESTLIB_H
#define SVC_TESTLIB_H

#include <stdbool.h>
#include <string.h>

typedef struct test_case {
    const char *name;        /* test name as printed */
    void (*fn)(void);        /* the test body */
} test_case;

#define TEST(name) static void test_##name(void)
#define T(name) { #name, test_##name }

/* Records a failure of the current test; used by the CHECK macros. */
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(expr) do { if (!(expr)) test_fail(__FILE__, __LINE__, "%s", #expr); } while (0)
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, a_, b_); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) test_fail(__FILE__, __LINE__, "%s == %s (\"%s\" != \"%s\")", \
        #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)

int test_main(const char *suite, const test_case *tests, int argc, char **argv);

#endif
