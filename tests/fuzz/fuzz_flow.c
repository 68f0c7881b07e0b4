/*
 * Fuzz target: a stream's credit and half-close state machine (libsvc/flow.h),
 * driven by an arbitrary sequence of peer messages and local actions, as a
 * peer on the wire can order them.  Checks the invariants the server and the
 * client rely on to bound memory:
 *   - data is accepted only within the credit granted (never more queued than
 *     granted), never after a half-close, never when the end takes none;
 *   - the credit we hold never passes 2^32-1, whatever the peer grants;
 *   - we never send without credit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "svc/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t s_u32(const uint8_t *d, size_t n)
{
    uint32_t v = 0;
    memcpy(&v, d, n < 4 ? n : 4);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    svc__flow f;
    bool accepts = data[0] & 1;
    uint32_t window = s_u32(data + 1, 4) % 4096, credit = s_u32(data + 5, 4);
    svc__flow_init(&f, accepts, window, credit);
    uint64_t queued = 0;   /* accepted and not consumed */
    const char *why;
    for (size_t i = 9; i < size; i++) {
        switch (data[i] % 6) {
        case 0:   /* peer: STREAM_DATA */
            if (svc__flow_on_data(&f, &why) == 0) {
                if (!f.in_accepts || f.in_eof)
                    abort();
                queued++;
                if (f.in_limited && f.in_got > f.in_allowed)
                    abort();
            } else if (!why || !*why) {
                abort();
            }
            break;
        case 1:   /* peer: STREAM_CLOSE */
            svc__flow_on_close(&f, &why);
            if (!f.in_eof)
                abort();
            break;
        case 2: { /* peer: STREAM_CREDIT n */
            uint32_t n = i + 4 < size ? s_u32(data + i + 1, 4) : data[i];
            uint64_t before = f.out_credit;
            int rc = svc__flow_on_credit(&f, n, &why);
            if (f.out_credit > SVC_FLOW_MAX_CREDIT)
                abort();
            if (rc < 0 && f.out_credit != before)
                abort();
            i += i + 4 < size ? 4 : 0;
            break;
        }
        case 3:   /* we send, when allowed */
            if (svc__flow_can_send(&f)) {
                uint64_t before = f.out_credit;
                svc__flow_sent(&f);
                if (f.out_limited && f.out_credit != before - 1)
                    abort();
            }
            break;
        case 4:   /* the application consumes one */
            if (queued) {
                queued--;
                uint64_t allowed = f.in_allowed;
                uint32_t g = svc__flow_consumed(&f);
                if (f.in_allowed != allowed + g)
                    abort();
                if (g && (!f.in_limited || f.in_eof))
                    abort();
                /* what the peer may still send never exceeds one window */
                if (f.in_limited && f.in_allowed - f.in_got > f.window)
                    abort();
            }
            break;
        case 5:   /* we half-close */
            f.out_eof = true;
            if (svc__flow_can_send(&f))
                abort();
            break;
        }
    }
    return 0;
}
