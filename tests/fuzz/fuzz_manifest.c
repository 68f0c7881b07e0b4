/*
 * tests/fuzz/fuzz_manifest.c — libFuzzer target for the supervisor's manifest parser.
 *
 * Any input must either parse into a manifest that has a command and a
 * fingerprint, or fail with a one-line "FILE:LINE: reason" error.  A parsed
 * manifest is also checked as a one-element set.  Violations abort().
 */
#include "../../supervisor/manifest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    sup_manifest *m = sup_manifest_parse("f.ini", (const char *)data, size, err, sizeof err);
    if (!m) {
        if (strncmp(err, "f.ini:", 6) != 0 || strchr(err, '\n'))
            abort();
        return 0;
    }
    if (!m->command || !m->name || !m->fingerprint || !m->args || m->instances < 1)
        abort();
    sup_manifest_set set = { 0 };
    if (sup_manifest_set_add(&set, &m) == 0)
        (void)sup_manifest_set_check(&set, err, sizeof err);
    sup_manifest_set_release(&set);
    return 0;
}
