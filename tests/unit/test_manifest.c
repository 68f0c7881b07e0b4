/* tests/unit/test_manifest.c — the supervisor's manifest parser and set checks. */
#include "testlib.h"
#include "../../supervisor/manifest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static sup_manifest *s_parse(const char *text, char *err)
{
    return sup_manifest_parse("m/x.ini", text, strlen(text), err, 256);
}

/* Parsing text must fail with exactly want. */
static void s_bad(const char *text, const char *want)
{
    char err[256] = "";
    sup_manifest *m = s_parse(text, err);
    CHECK(m == NULL);
    CHECK_STR(err, want);
    sup_manifest_free(&m);
}

TEST(every_key)
{
    char err[256] = "";
    sup_manifest *m = s_parse(
        "# comment\n"
        "; also a comment\n"
        "[service]\n"
        "name = web.api\n"
        "command = /usr/bin/web\n"
        "args = --port 80 \"a b\" 'c \"d\"' e\\ f\n"
        "instances = 4\n"
        "environment = A=1 B=\"two words\"\n"
        "environment = C=3\n"
        "working_directory = /srv\n"
        "user = nobody\n"
        "group = nogroup\n"
        "after = svc.registry, db\n"
        "after = cache\n"
        "ready = notify\n"
        "ready_timeout = 1m\n"
        "watchdog = 500ms\n"
        "stop_signal = SIGINT\n"
        "stop_timeout = 2.5\n"
        "[restart]\n"
        "policy = always\n"
        "backoff_initial = 250ms\n"
        "backoff_factor = 1.5\n"
        "backoff_cap = 1m\n"
        "backoff_jitter = 0.2\n"
        "start_limit_burst = 7\n"
        "start_limit_interval = 20s\n"
        "[health]\n"
        "check = http\n"
        "url = http://127.0.0.1:8080/healthz\n"
        "interval = 3\n"
        "timeout = 1\n"
        "failures = 2\n"
        "[log]\n"
        "sink = file\n"
        "max_size = 64K\n"
        "files = 5\n"
        "[limits]\n"
        "nofile = 4096\n"
        "core = infinity\n", err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_STR(m->name, "web.api");
    CHECK_STR(m->command, "/usr/bin/web");
    CHECK_INT(m->n_args, 5);
    CHECK_STR(m->args[2], "a b");
    CHECK_STR(m->args[3], "c \"d\"");
    CHECK_STR(m->args[4], "e f");
    CHECK(m->args[5] == NULL);
    CHECK_INT(m->instances, 4);
    CHECK_INT(m->n_env, 3);
    CHECK_STR(m->env[1], "B=two words");
    CHECK_STR(m->workdir, "/srv");
    CHECK_STR(m->user, "nobody");
    CHECK_INT(m->n_after, 3);
    CHECK_STR(m->after[0], "svc.registry");
    CHECK_STR(m->after[1], "db");
    CHECK_INT(m->after_lines[2], 14);
    CHECK_INT(m->ready, SUP_READY_NOTIFY);
    CHECK(m->ready_timeout == 60);
    CHECK(m->watchdog == 0.5);
    CHECK_INT(m->stop_signal, SIGINT);
    CHECK(m->stop_timeout == 2.5);
    CHECK_INT(m->restart, SUP_RESTART_ALWAYS);
    CHECK(m->backoff_initial == 0.25 && m->backoff_factor == 1.5 && m->backoff_cap == 60);
    CHECK(m->backoff_jitter == 0.2);
    CHECK_INT(m->start_limit_burst, 7);
    CHECK(m->start_limit_interval == 20);
    CHECK_INT(m->health, SUP_HEALTH_HTTP);
    CHECK_STR(m->health_target, "http://127.0.0.1:8080/healthz");
    CHECK_INT(m->health_failures, 2);
    CHECK_INT(m->log_sink, SUP_LOG_FILE);
    CHECK_INT(m->log_max_size, 65536);
    CHECK_INT(m->log_files, 5);
    CHECK_INT(m->n_rlimits, 2);
    CHECK_INT(m->rlimits[0].resource, RLIMIT_NOFILE);
    CHECK_INT(m->rlimits[0].value, 4096);
    CHECK(m->rlimits[1].value == RLIM_INFINITY);
    sup_manifest_free(&m);
    CHECK(m == NULL);
    sup_manifest_free(&m);
}

TEST(defaults_and_name_from_file)
{
    char err[256];
    sup_manifest *m = s_parse("[service]\ncommand = greeter\n", err);
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_STR(m->name, "x");
    CHECK_INT(m->n_args, 0);
    CHECK(m->args && m->args[0] == NULL);
    CHECK_INT(m->instances, 1);
    CHECK_INT(m->restart, SUP_RESTART_ON_FAILURE);
    CHECK(m->backoff_initial == 0.1 && m->backoff_factor == 2 && m->backoff_cap == 30);
    CHECK_INT(m->start_limit_burst, 5);
    CHECK_INT(m->stop_signal, SIGTERM);
    CHECK(m->stop_timeout == 10);
    CHECK_INT(m->ready, SUP_READY_NONE);
    CHECK_INT(m->health, SUP_HEALTH_NONE);
    sup_manifest_free(&m);
}

TEST(errors_name_line_and_reason)
{
    s_bad("[service]\ncommand = a\nfrobnicate = 1\n", "m/x.ini:3: unknown key \"frobnicate\" in [service]");
    s_bad("\n[service]\ninstances = 2\n", "m/x.ini:2: missing key \"command\" in [service]");
    s_bad("[service]\ncommand = a\ninstances = 3x\n", "m/x.ini:3: bad number \"3x\"");
    s_bad("[service]\ncommand = a\ninstances = 0\n", "m/x.ini:3: number 0 out of range 1..256");
    s_bad("[service]\ncommand = a\nstop_timeout = -1\n",
          "m/x.ini:3: bad number \"-1\": want seconds, e.g. 1.5, 250ms, 2s, 1m");
    s_bad("[service]\ncommand = a\nstop_timeout = 5h\n",
          "m/x.ini:3: bad number \"5h\": want seconds, e.g. 1.5, 250ms, 2s, 1m");
    s_bad("[restart]\npolicy = sometimes\n[service]\ncommand = a\n",
          "m/x.ini:2: bad value \"sometimes\": want always, on-failure or never");
    s_bad("command = a\n", "m/x.ini:1: key \"command\" outside a section (start with [service])");
    s_bad("[servce]\n", "m/x.ini:1: unknown section [servce]: want service, restart, health, log or limits");
    s_bad("[service\n", "m/x.ini:1: bad section header \"[service\"");
    s_bad("[service]\ncommand\n", "m/x.ini:2: expected \"key = value\", got \"command\"");
    s_bad("[service]\ncommand = a\ncommand = b\n", "m/x.ini:3: key \"command\" given twice in [service]");
    s_bad("[service]\ncommand = a\nargs = \"open\n", "m/x.ini:3: unterminated \" quote");
    s_bad("[service]\ncommand = a\nenvironment = =x\n", "m/x.ini:3: bad environment entry \"=x\": want NAME=VALUE");
    s_bad("[service]\ncommand = a\nafter = x\n", "m/x.ini:3: service \"x\" cannot come after itself");
    s_bad("[service]\ncommand = a\n[health]\ncheck = tcp\n", "m/x.ini:1: [health] check needs \"address\"");
    s_bad("[service]\ncommand = a\n[health]\ncheck = rpc\n",
          "m/x.ini:1: [health] check = rpc needs ready = notify (the address comes with READY=1)");
    s_bad("[service]\ncommand = a\nstop_signal = BOOM\n",
          "m/x.ini:3: bad value \"BOOM\": want TERM, INT, HUP, QUIT, KILL, USR1, USR2 or ABRT");
    s_bad("[service]\ncommand = a\n[log]\nmax_size = 10Q\n",
          "m/x.ini:4: bad number \"10Q\": want bytes, e.g. 4096, 64K, 10M");
    char err[256];
    CHECK(sup_manifest_parse("m/x.ini", "[service]\0command = a\n", 21, err, sizeof err) == NULL);
    CHECK_STR(err, "m/x.ini:1: NUL byte in file");
}

/* Builds a set from name/text pairs. */
static void s_set(sup_manifest_set *set, const char *const *files)
{
    for (; *files; files += 2) {
        char err[256];
        sup_manifest *m = sup_manifest_parse(files[0], files[1], strlen(files[1]), err, sizeof err);
        CHECK(m != NULL);
        if (m)
            sup_manifest_set_add(set, &m);
    }
}

TEST(set_checks)
{
    char err[256] = "";
    sup_manifest_set set = { 0 };
    const char *const cycle[] = { "d/a.ini", "[service]\ncommand = a\nafter = b\n",
                                  "d/b.ini", "[service]\ncommand = b\n\nafter = c\n",
                                  "d/c.ini", "[service]\ncommand = c\nafter = a\n", NULL };
    s_set(&set, cycle);
    CHECK(sup_manifest_set_check(&set, err, sizeof err) < 0);
    CHECK_STR(err, "d/c.ini:3: dependency cycle: a -> b -> c -> a");   /* the line that closes it */
    sup_manifest_set_release(&set);

    const char *const unknown[] = { "d/a.ini", "[service]\ncommand = a\nafter = ghost\n", NULL };
    s_set(&set, unknown);
    CHECK(sup_manifest_set_check(&set, err, sizeof err) < 0);
    CHECK_STR(err, "d/a.ini:3: unknown dependency \"ghost\" in after");
    sup_manifest_set_release(&set);

    const char *const dup[] = { "d/a.ini", "[service]\ncommand = a\n",
                                "d/b.ini", "[service]\nname = a\ncommand = b\n", NULL };
    s_set(&set, dup);
    CHECK(sup_manifest_set_check(&set, err, sizeof err) < 0);
    CHECK_STR(err, "d/b.ini:1: service \"a\" is already defined in d/a.ini");
    sup_manifest_set_release(&set);

    const char *const ok[] = { "d/r.ini", "[service]\nname = reg\ncommand = r\n",
                               "d/a.ini", "[service]\ncommand = a\nafter = reg\n",
                               "d/b.ini", "[service]\ncommand = b\nafter = a reg\n", NULL };
    s_set(&set, ok);
    CHECK(sup_manifest_set_check(&set, err, sizeof err) == 0);
    CHECK(sup_manifest_set_find(&set, "reg") == set.items[0]);
    CHECK(sup_manifest_set_find(&set, "nope") == NULL);
    sup_manifest_set_release(&set);
}

TEST(fingerprint_ignores_comments_and_order)
{
    char err[256];
    sup_manifest *a = s_parse("[service]\ncommand = a\ninstances = 2\n", err);
    sup_manifest *b = s_parse("# note\n[service]\ninstances  =  2\ncommand = a\n", err);
    sup_manifest *c = s_parse("[service]\ncommand = a\ninstances = 3\n", err);
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK_STR(a->fingerprint, b->fingerprint);
        CHECK(strcmp(a->fingerprint, c->fingerprint) != 0);
    }
    sup_manifest_free(&a);
    sup_manifest_free(&b);
    sup_manifest_free(&c);
}

static const test_case tests[] = {
    T(every_key), T(defaults_and_name_from_file), T(errors_name_line_and_reason), T(set_checks),
    T(fingerprint_ignores_comments_and_order), { NULL, NULL },
};

int main(int argc, char **argv) { return test_main("manifest", tests, argc, argv); }
