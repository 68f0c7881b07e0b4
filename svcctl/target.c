/*
 * svcctl/target.c — the flags of the verbs that call a service's nodes
 * (call, stream): which nodes, and the metadata to send.  See svcctl.h.
 */
#include "svcctl.h"

int ctl_target_flag(ctl_target *t, const char *verb, int opt, const char *arg)
{
    switch (opt) {
    case 'm':
        if (svc_meta_parse(&t->meta, arg) < 0) {
            ctl_err("%s: invalid metadata \"%s\": want KEY=VALUE", verb, arg);
            return EXIT_USAGE;
        }
        return 0;
    case 'a':
        t->address = arg;
        return 0;
    case 'v':
        t->version = arg;
        return 0;
    case 'n':
        t->node_meta = arg;
        return 0;
    default:
        ctl_err("%s: not a target option", verb);   /* a caller's programming error */
        return EXIT_USAGE;
    }
}
