/*
 * supervisor/sup.c — the set of services as a whole: dependency order at
 * start, reverse order at stop, reload.
 *
 * A service starts once every service it names in `after` is up (all of
 * its instances READY or UNHEALTHY).  At shutdown a service is stopped once
 * no service that comes after it has a process left.  Both are re-examined
 * whenever an instance changes state (sup_changed), never on a timer.
 */
#include "sup.h"
#include "svc/error.h"
#include "svc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sup_service *sup_find(sup *s, const char *name)
{
    for (sup_service *v = s->services; v; v = v->next)
        if (strcmp(v->m->name, name) == 0 && !v->removing)
            return v;
    return NULL;
}

bool sup_service_up(const sup_service *v)
{
    for (int k = 0; k < v->n_inst; k++)
        if (v->inst[k].state != SUP_READY && v->inst[k].state != SUP_UNHEALTHY)
            return false;
    return true;
}

bool sup_service_down(const sup_service *v)
{
    for (int k = 0; k < v->n_inst; k++)
        if (v->inst[k].pid > 0 || v->inst[k].state == SUP_STOPPING)
            return false;
    return true;
}

static sup_service *s_service_new(sup *s, sup_manifest *m)
{
    sup_service *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->sup = s;
    v->m = m;
    v->log_fd = -1;
    v->n_inst = m->instances;
    v->inst = calloc((size_t)v->n_inst, sizeof *v->inst);
    v->tail = calloc(SUP_TAIL_LINES, sizeof *v->tail);
    if (!v->inst || !v->tail) {
        free(v->inst);
        free(v->tail);
        free(v);
        return NULL;
    }
    for (int k = 0; k < v->n_inst; k++)
        sup_instance_init(&v->inst[k], v, k);
    return v;
}

static void s_service_free(sup_service *v)
{
    for (int k = 0; k < v->n_inst; k++)
        sup_instance_release(&v->inst[k]);
    free(v->inst);
    sup_logs_release(v);
    free(v->tail);
    sup_manifest_free(&v->m);
    sup_manifest_free(&v->next_m);
    free(v);
}

static void s_append(sup *s, sup_service *v)
{
    sup_service **p = &s->services;
    while (*p)
        p = &(*p)->next;
    *p = v;
}

/* Replaces v's instances with those of its next manifest (v is down). */
static int s_swap_manifest(sup_service *v)
{
    sup_manifest *m = v->next_m;
    sup_instance *inst = calloc((size_t)m->instances, sizeof *inst);
    if (!inst)
        return -ENOMEM;
    for (int k = 0; k < v->n_inst; k++)
        sup_instance_release(&v->inst[k]);
    free(v->inst);
    sup_manifest_free(&v->m);
    v->m = m;
    v->next_m = NULL;
    v->inst = inst;
    v->n_inst = m->instances;
    for (int k = 0; k < v->n_inst; k++)
        sup_instance_init(&v->inst[k], v, k);
    return 0;
}

static bool s_deps_up(sup *s, const sup_service *v)
{
    for (size_t d = 0; d < v->m->n_after; d++) {
        sup_service *dep = sup_find(s, v->m->after[d]);
        if (dep && !sup_service_up(dep))
            return false;
    }
    return true;
}

void sup_schedule(sup *s)
{
    if (s->stopping)
        return;
    for (sup_service *v = s->services; v; v = v->next) {
        if (!v->want_up || v->started || v->removing || v->next_m)
            continue;
        if (!s_deps_up(s, v))
            continue;
        v->started = true;
        svc_info("starting service\tservice=%s instances=%d", v->m->name, v->n_inst);
        for (int k = 0; k < v->n_inst; k++)
            sup_instance_start(&v->inst[k]);
    }
}

/* Does any live service come after v (name it in `after`) and still run? */
static bool s_dependants_running(sup *s, const sup_service *v)
{
    for (sup_service *o = s->services; o; o = o->next) {
        if (o == v || sup_service_down(o))
            continue;
        for (size_t d = 0; d < o->m->n_after; d++)
            if (strcmp(o->m->after[d], v->m->name) == 0)
                return true;
    }
    return false;
}

static void s_stop_service(sup_service *v)
{
    for (int k = 0; k < v->n_inst; k++)
        sup_instance_stop(&v->inst[k], SUP_KILL_STOP);
}

/* At shutdown: stop what nothing running depends on; end the loop when all are down. */
static void s_shutdown_step(sup *s)
{
    bool all_down = true;
    for (sup_service *v = s->services; v; v = v->next) {
        if (sup_service_down(v)) {
            for (int k = 0; k < v->n_inst; k++)
                if (v->inst[k].state == SUP_BACKOFF || v->inst[k].state == SUP_FAILED)
                    sup_instance_stop(&v->inst[k], SUP_KILL_STOP);
            continue;
        }
        all_down = false;
        if (!s_dependants_running(s, v))
            s_stop_service(v);
    }
    if (all_down)
        ev_break(s->loop, EVBREAK_ALL);
}

void sup_shutdown(sup *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    svc_info("stopping every service");
    sup_sd_notify(s, "STOPPING=1\nSTATUS=stopping services");
    for (sup_service *v = s->services; v; v = v->next)
        v->want_up = false;
    s_shutdown_step(s);
}

/*
 * Systemd status: how many instances are ready.  READY=1 once the first start
 * has settled: no instance is starting (the rest are up, failed, backing off,
 * or waiting for a dependency that is not up), so a failing service cannot
 * hold the unit in "activating" until systemd's start timeout.
 */
static void s_sd_status(sup *s)
{
    int ready = 0, total = 0;
    bool settled = true;
    for (sup_service *v = s->services; v; v = v->next) {
        for (int k = 0; k < v->n_inst; k++) {
            sup_state st = v->inst[k].state;
            total++;
            ready += st == SUP_READY || st == SUP_UNHEALTHY;
            if (st == SUP_STARTING)   /* what can start has (the plan just ran) */
                settled = false;
        }
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%sSTATUS=%d of %d instances ready",
             settled && !s->sd_ready_sent ? "READY=1\n" : "", ready, total);
    if (settled)
        s->sd_ready_sent = true;
    sup_sd_notify(s, msg);
}

/* The plan runs from an idle watcher, never inside an instance's own callback. */
static void s_on_plan(struct ev_loop *loop, ev_idle *w, int revents)
{
    sup *s = w->data;
    ev_idle_stop(loop, w);
    if (s->stopping) {
        s_shutdown_step(s);
        return;
    }
    /* Services dropped or changed by a reload move on once they are down. */
    for (sup_service **p = &s->services; *p;) {
        sup_service *v = *p;
        if (v->removing && sup_service_down(v)) {
            bool busy = false;
            for (int k = 0; k < v->n_inst; k++)
                busy |= v->inst[k].state == SUP_BACKOFF;
            if (!busy) {
                svc_info("removed service\tservice=%s", v->m->name);
                *p = v->next;
                s_service_free(v);
                continue;
            }
        }
        if (v->next_m && sup_service_down(v)) {
            svc_info("restarting changed service\tservice=%s", v->m->name);
            if (s_swap_manifest(v) == 0)
                v->started = false;
        }
        p = &v->next;
    }
    sup_schedule(s);
    if (s->sd_notify_socket)
        s_sd_status(s);
}

void sup_changed(sup *s)
{
    if (!s->plan.data) {
        ev_idle_init(&s->plan, s_on_plan);
        s->plan.data = s;
    }
    ev_idle_start(s->loop, &s->plan);
}

int sup_apply_initial(sup *s, sup_manifest_set *set)
{
    for (size_t k = 0; k < set->n; k++) {
        sup_service *v = s_service_new(s, set->items[k]);
        if (!v)
            return -ENOMEM;
        set->items[k] = NULL;
        v->want_up = true;
        s_append(s, v);
    }
    sup_manifest_set_release(set);
    sup_changed(s);
    return 0;
}

void sup_service_start(sup_service *v)
{
    v->want_up = true;
    if (!v->started) {
        sup_schedule(v->sup);
        if (!v->started) {   /* dependencies not up: start it anyway, as asked */
            v->started = true;
            for (int k = 0; k < v->n_inst; k++)
                sup_instance_start(&v->inst[k]);
        }
        return;
    }
    for (int k = 0; k < v->n_inst; k++)
        sup_instance_start(&v->inst[k]);
}

void sup_service_stop(sup_service *v)
{
    v->want_up = false;
    v->started = false;
    s_stop_service(v);
}

void sup_service_restart(sup_service *v)
{
    v->want_up = true;
    v->started = true;
    for (int k = 0; k < v->n_inst; k++) {
        sup_instance *i = &v->inst[k];
        if (i->pid > 0 && i->state != SUP_STOPPING) {
            sup_instance_stop(i, SUP_KILL_RESTART);
            i->reason = SUP_KILL_RESTART;
        } else {
            sup_instance_start(i);
        }
    }
}

static int s_addf(char *buf, size_t len, const char *what, const char *name)
{
    size_t used = strlen(buf);
    if (used < len)
        snprintf(buf + used, len - used, "%s%s %s", used ? "\n" : "", what, name);
    return 0;
}

int sup_reload(sup *s, char *err, size_t errlen, char *summary, size_t sumlen)
{
    sup_manifest_set set = { 0 };
    summary[0] = 0;
    int rc = sup_manifest_load_dir(s->manifest_dir, &set, err, errlen);
    if (rc < 0) {
        svc_warn("reload rejected; nothing changed\terror=\"%s\"", err);
        return rc;
    }
    /* Removed: stop, then free once down. */
    for (sup_service *v = s->services; v; v = v->next) {
        if (v->removing || sup_manifest_set_find(&set, v->m->name))
            continue;
        svc_info("reload: removing\tservice=%s", v->m->name);
        s_addf(summary, sumlen, "removed", v->m->name);
        v->want_up = false;
        v->removing = true;
        s_stop_service(v);
    }
    for (size_t k = 0; k < set.n; k++) {
        sup_manifest *m = set.items[k];
        sup_service *v = sup_find(s, m->name);
        if (!v) {
            sup_service *nv = s_service_new(s, m);
            if (!nv) {
                snprintf(err, errlen, "out of memory");
                rc = -ENOMEM;
                break;
            }
            set.items[k] = NULL;
            nv->want_up = true;
            s_append(s, nv);
            svc_info("reload: adding\tservice=%s", m->name);
            s_addf(summary, sumlen, "added", m->name);
            continue;
        }
        const char *cur = v->next_m ? v->next_m->fingerprint : v->m->fingerprint;
        if (strcmp(cur, m->fingerprint) == 0)
            continue;
        svc_info("reload: changed\tservice=%s", m->name);
        s_addf(summary, sumlen, "changed", m->name);
        sup_manifest_free(&v->next_m);
        v->next_m = m;
        set.items[k] = NULL;
        v->want_up = true;
        s_stop_service(v);
    }
    sup_manifest_set_release(&set);
    sup_changed(s);
    return rc;
}
