/*
 * bench/storecall.h — stored throughput, and raw LMDB as its floor.
 *
 * svc-bench store-client --op write|read [--clients N] [--seconds S]
 *     [--size BYTES] [--keys K] [--registry ADDR] [--label NAME]
 *   N threads (default 1), each with its own svc_client, call Store.Write
 *   (or Store.Read of keys written first) back to back for S seconds on
 *   keys bench-0 .. bench-K-1 (default 1000) with SIZE-byte values
 *   (default 100).  Prints one JSON line {"bench":LABEL,"value":ops/s,
 *   "unit":"ops/s","clients":N,...}.  Every write counted was acknowledged,
 *   so it is durable.
 *
 * svc-bench lmdb-raw --op put|get|hold DIR [--batch B] [--seconds S] [--size BYTES] [--keys K] [--label NAME]
 *   The same in-process against LMDB in DIR: put = B puts per durable
 *   (fsync'd) commit (default 1), get = one get per read transaction;
 *   hold = open a read transaction, print a line and wait to be killed
 *   (the tests' stale reader slot).
 *
 * Exit 0, 1 on a failed call, 64 on bad usage.
 */
#ifndef BM_STORECALL_H
#define BM_STORECALL_H

int bm_store_client(int argc, char **argv);
int bm_lmdb_raw(int argc, char **argv);

#endif
