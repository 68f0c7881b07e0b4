/* Unit tests: a durable consumer's pending set, ack checks and ack floor (brokerd/consumer.h). */
#include "testlib.h"

#include "../../brokerd/consumer.c"

TEST(pending_stays_sorted_and_finds_by_seq)
{
    brk_consumer c;
    memset(&c, 0, sizeof c);
    c.next_seq = 1;
    for (uint64_t s = 10; s >= 1; s--)
        CHECK_INT(brk_pend_put(&c, s, 1, 100), 0);
    CHECK_INT(c.n_pend, 10);
    for (size_t i = 0; i < c.n_pend; i++)
        CHECK_INT(c.pend[i].seq, i + 1);
    CHECK_INT(brk_pend_find(&c, 7), 6);
    CHECK_INT(brk_pend_find(&c, 11), -1);
    CHECK_INT(brk_pend_put(&c, 7, 3, 500), 0);   /* update in place */
    CHECK_INT(c.n_pend, 10);
    CHECK_INT(c.pend[6].deliveries, 3);
    brk_consumer_release(&c);
}

TEST(ack_of_an_older_delivery_is_stale)
{
    brk_consumer c;
    memset(&c, 0, sizeof c);
    c.next_seq = 6;
    brk_pend_put(&c, 5, 2, 0);   /* event 5, delivered twice */
    CHECK(brk_ack_check(&c, 5, 1) == BRK_ACK_STALE);
    CHECK(brk_ack_check(&c, 5, 2) == BRK_ACK_OK);
    CHECK(brk_ack_check(&c, 4, 1) == BRK_ACK_UNKNOWN);
    CHECK_INT(brk_redelivered(&c), 1);
    brk_consumer_release(&c);
}

TEST(ack_floor_is_below_the_first_pending)
{
    brk_consumer c;
    memset(&c, 0, sizeof c);
    c.next_seq = 1;
    CHECK_INT(brk_ack_floor(&c), 0);
    c.next_seq = 9;
    CHECK_INT(brk_ack_floor(&c), 8);           /* nothing pending: all delivered are acked */
    brk_pend_put(&c, 4, 1, 0);
    brk_pend_put(&c, 7, 1, 0);
    CHECK_INT(brk_ack_floor(&c), 3);
    brk_pend_remove(&c, (size_t)brk_pend_find(&c, 4));
    CHECK_INT(brk_ack_floor(&c), 6);
    brk_pend_remove(&c, 0);
    CHECK_INT(brk_ack_floor(&c), 8);
    brk_consumer_release(&c);
}

static const test_case tests[] = {
    T(pending_stays_sorted_and_finds_by_seq), T(ack_of_an_older_delivery_is_stale),
    T(ack_floor_is_below_the_first_pending), { NULL, NULL },
};

int main(int argc, char **argv) { return test_main("consumer", tests, argc, argv); }
