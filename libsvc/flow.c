/* libsvc/flow.c — stream credits and half-close.  See flow.h. */
#include "flow.h"
#include "svc/error.h"

void svc__flow_init(svc__flow *f, bool accepts, uint32_t window, uint32_t out_credit)
{
    *f = (svc__flow){ .in_accepts = accepts, .in_limited = accepts && window > 0,
                      .window = window, .in_allowed = accepts ? window : 0 };
    svc__flow_set_out(f, out_credit);
}

void svc__flow_set_out(svc__flow *f, uint32_t credit)
{
    f->out_limited = credit > 0;
    f->out_credit = credit;
}

int svc__flow_on_data(svc__flow *f, const char **why)
{
    if (!f->in_accepts) {
        *why = "this stream takes no data from this side";
        return SVC_EPROTO;
    }
    if (f->in_eof) {
        *why = "stream data after half-close";
        return SVC_EPROTO;
    }
    if (f->in_limited && f->in_got >= f->in_allowed) {
        *why = "stream credit exceeded";
        return SVC_EPROTO;
    }
    f->in_got++;
    return 0;
}

int svc__flow_on_close(svc__flow *f, const char **why)
{
    if (f->in_eof) {
        *why = "stream half-closed twice";
        return SVC_EPROTO;
    }
    f->in_eof = true;
    return 0;
}

int svc__flow_on_credit(svc__flow *f, uint32_t n, const char **why)
{
    if (n == 0 || !f->out_limited)
        return 0;
    if (f->out_credit + n > SVC_FLOW_MAX_CREDIT) {
        *why = "stream credit overflow: more than 4294967295 granted";
        return SVC_EPROTO;
    }
    f->out_credit += n;
    return 0;
}

bool svc__flow_can_send(const svc__flow *f)
{
    return !f->out_eof && (!f->out_limited || f->out_credit > 0);
}

void svc__flow_sent(svc__flow *f)
{
    if (f->out_limited && f->out_credit > 0)
        f->out_credit--;
}

uint32_t svc__flow_consumed(svc__flow *f)
{
    if (!f->in_limited)
        return 0;
    f->in_unacked++;
    if (f->in_eof || f->in_unacked < (f->window + 1) / 2)
        return 0;
    uint32_t n = f->in_unacked;
    f->in_unacked = 0;
    f->in_allowed += n;
    return n;
}
