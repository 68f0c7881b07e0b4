// bench/grpc/grpc-bench.cc — the peer: a gRPC C++ unary echo, server and client.
//
//   grpc-bench server ADDR [--threads N]
//       serves benchgrpc.Echo/Call (msg = name) at ADDR until SIGTERM/SIGINT;
//       prints the bound address on stdout.  Async API, one completion queue
//       and one thread per --threads (default: online CPUs), as gRPC's own
//       benchmarks configure it.
//   grpc-bench client ADDR [--seconds S] [--warmup S] [--size N] [--in-flight N]
//                          [--wait MS] [--label NAME]
//       keeps N calls in flight on one channel from one thread (async
//       completion queue); prints the same JSON result lines as svc-bench:
//       grpc-unary.<transport> (calls/s), grpc-unary-p50/-p99.<transport> (us).
//
// ADDR is written as svc's addresses are: tcp://HOST:PORT (PORT 0 or *
// picks one) or ipc:///PATH (a unix domain socket, gRPC's unix:PATH).
// Exit 0 ok, 1 failure, 64 usage.  Built only by `make bench`.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <unistd.h>

#include "echo.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

uint64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

// svc address -> gRPC target; "tcp" or "ipc" into *transport.  Empty on a bad address.
std::string to_target(const std::string &addr, std::string *transport)
{
    if (addr.rfind("tcp://", 0) == 0) {
        *transport = "tcp";
        std::string t = addr.substr(6);
        if (t.size() > 2 && t.compare(t.size() - 2, 2, ":*") == 0)
            t.replace(t.size() - 1, 1, "0");
        return t;
    }
    if (addr.rfind("ipc://", 0) == 0 && addr.size() > 6) {
        *transport = "ipc";
        return "unix:" + addr.substr(6);
    }
    return "";
}

struct Flags {
    double seconds = 3, warmup = 0.5;
    long size = 64, in_flight = 1, wait_ms = 10000, threads = 0;
    std::string label = "grpc-unary", addr;
};

// Parses "--name value" pairs; returns 0, or 64 after a one-line message.
int parse(int argc, char **argv, bool server, Flags *f)
{
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0) {
            if (!f->addr.empty()) {
                fprintf(stderr, "grpc-bench: unexpected argument \"%s\"\n", a.c_str());
                return 64;
            }
            f->addr = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "grpc-bench: option needs a value \"%s\"\n", a.c_str());
            return 64;
        }
        const char *v = argv[++i];
        char *end = nullptr;
        double d = strtod(v, &end);
        bool num = end != v && *end == '\0';
        auto bad = [&](const char *want) {
            fprintf(stderr, "grpc-bench: invalid value \"%s\" for %s: want %s\n", v, a.c_str(),
                    want);
            return 64;
        };
        if (a == "--threads" && server) {
            if (!num || d < 1 || d > 64) return bad("1 to 64");
            f->threads = (long)d;
        } else if (server) {
            fprintf(stderr, "grpc-bench: unknown option \"%s\"\n", a.c_str());
            return 64;
        } else if (a == "--seconds") {
            if (!num || d < 0.01 || d > 3600) return bad("seconds from 0.01 to 3600");
            f->seconds = d;
        } else if (a == "--warmup") {
            if (!num || d < 0 || d > 3600) return bad("seconds from 0 to 3600");
            f->warmup = d;
        } else if (a == "--size") {
            if (!num || d < 1 || d > (1 << 20)) return bad("1 to 1048576");
            f->size = (long)d;
        } else if (a == "--in-flight") {
            if (!num || d < 1 || d > 4096) return bad("1 to 4096");
            f->in_flight = (long)d;
        } else if (a == "--wait") {
            if (!num || d < 0 || d > 600000) return bad("0 to 600000");
            f->wait_ms = (long)d;
        } else if (a == "--label") {
            f->label = v;
        } else {
            fprintf(stderr, "grpc-bench: unknown option \"%s\"\n", a.c_str());
            return 64;
        }
    }
    if (f->addr.empty()) {
        fprintf(stderr, "grpc-bench: %s needs ADDR\n", server ? "server" : "client");
        return 64;
    }
    return 0;
}

// ---- server ------------------------------------------------------------------

// One call being served: waits for a request, answers, frees itself.
class ServerCall {
public:
    ServerCall(benchgrpc::Echo::AsyncService *svc, grpc::ServerCompletionQueue *cq)
        : svc_(svc), cq_(cq), responder_(&ctx_)
    {
        svc_->RequestCall(&ctx_, &req_, &responder_, cq_, cq_, this);
    }

    void proceed(bool ok)
    {
        if (answered_ || !ok) {   // finished, or the server is shutting down
            delete this;
            return;
        }
        new ServerCall(svc_, cq_);   // the next call on this queue
        rsp_.set_msg(req_.name());
        answered_ = true;
        responder_.Finish(rsp_, grpc::Status::OK, this);
    }

private:
    benchgrpc::Echo::AsyncService *svc_;
    grpc::ServerCompletionQueue *cq_;
    grpc::ServerContext ctx_;
    benchgrpc::HelloRequest req_;
    benchgrpc::HelloResponse rsp_;
    grpc::ServerAsyncResponseWriter<benchgrpc::HelloResponse> responder_;
    bool answered_ = false;
};

void serve_queue(benchgrpc::Echo::AsyncService *svc, grpc::ServerCompletionQueue *cq)
{
    for (int i = 0; i < 64; i++)
        new ServerCall(svc, cq);
    void *tag;
    bool ok;
    while (cq->Next(&tag, &ok))
        static_cast<ServerCall *>(tag)->proceed(ok);
}

int run_server(int argc, char **argv)
{
    Flags f;
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: grpc-bench server ADDR [--threads N]\n");
        return 0;
    }
    int rc = parse(argc, argv, true, &f);
    if (rc)
        return rc;
    std::string transport, target = to_target(f.addr, &transport);
    if (target.empty()) {
        fprintf(stderr, "grpc-bench: invalid address \"%s\": want tcp://HOST:PORT or ipc:///PATH\n",
                f.addr.c_str());
        return 64;
    }
    if (!f.threads)
        f.threads = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    // SIGTERM/SIGINT are taken by sigwait in this thread only.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    benchgrpc::Echo::AsyncService svc;
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort(target, grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&svc);
    std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
    for (long i = 0; i < f.threads; i++)
        cqs.push_back(b.AddCompletionQueue());
    std::unique_ptr<grpc::Server> server = b.BuildAndStart();
    if (!server || (transport == "tcp" && port == 0)) {
        fprintf(stderr, "grpc-bench: cannot listen on \"%s\"\n", f.addr.c_str());
        return 1;
    }
    if (transport == "tcp")
        printf("tcp://%s:%d\n", target.substr(0, target.rfind(':')).c_str(), port);
    else
        printf("%s\n", f.addr.c_str());
    fflush(stdout);
    std::vector<std::thread> threads;
    for (auto &cq : cqs)
        threads.emplace_back(serve_queue, &svc, cq.get());
    int sig;
    sigwait(&sigs, &sig);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    for (auto &cq : cqs)
        cq->Shutdown();
    for (auto &t : threads)
        t.join();
    if (transport == "ipc")
        unlink(target.c_str() + 5);
    return 0;
}

// ---- client ------------------------------------------------------------------

// One call in flight; its tag in the completion queue.
struct ClientCall {
    unsigned slot;
    grpc::ClientContext ctx;
    benchgrpc::HelloResponse rsp;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<benchgrpc::HelloResponse>> reader;
};

struct Client {
    benchgrpc::Echo::Stub *stub;
    grpc::CompletionQueue cq;
    benchgrpc::HelloRequest req;
    long wait_ms;

    void start(unsigned slot)
    {
        auto *c = new ClientCall;
        c->slot = slot;
        c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(wait_ms));
        c->reader = stub->PrepareAsyncCall(&c->ctx, req, &cq);
        c->reader->StartCall();
        c->reader->Finish(&c->rsp, &c->status, c);
    }

    // The next finished call's slot, or -1 after printing why it failed.
    long finish()
    {
        void *tag;
        bool ok;
        if (!cq.Next(&tag, &ok))
            return -1;
        auto *c = static_cast<ClientCall *>(tag);
        long slot = c->slot;
        if (!ok || !c->status.ok()) {
            fprintf(stderr, "grpc-bench: call failed: %s\n", c->status.error_message().c_str());
            slot = -1;
        } else if (c->rsp.msg().size() != req.name().size()) {
            fprintf(stderr, "grpc-bench: answer of %zu bytes, want %zu\n", c->rsp.msg().size(),
                    req.name().size());
            slot = -1;
        }
        delete c;
        return slot;
    }
};

void print_line(const Flags &f, const std::string &transport, const char *suffix, double value,
                const char *unit, uint64_t calls, uint64_t answers, double secs)
{
    printf("{\"bench\":\"%s%s.%s\",\"value\":%.1f,\"unit\":\"%s\",\"transport\":\"%s\","
           "\"payload_bytes\":%ld,\"in_flight\":%ld,\"calls\":%llu,\"answers\":%llu,"
           "\"seconds\":%.3f,"
           "\"note\":\"gRPC C++ %s, async completion queue, one channel\"}\n",
           f.label.c_str(), suffix, transport.c_str(), value, unit, transport.c_str(), f.size,
           f.in_flight, (unsigned long long)calls, (unsigned long long)answers, secs,
           grpc::Version().c_str());
}

double quantile_us(std::vector<uint32_t> &lat, double q)
{
    if (lat.empty())
        return 0;
    size_t rank = (size_t)(q * (double)lat.size() + 0.999999);
    rank = std::min(std::max(rank, (size_t)1), lat.size());
    std::nth_element(lat.begin(), lat.begin() + (long)(rank - 1), lat.end());
    return lat[rank - 1] / 1000.0;
}

int run_client(int argc, char **argv)
{
    Flags f;
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: grpc-bench client ADDR [--seconds S] [--warmup S] [--size N] "
               "[--in-flight N] [--wait MS] [--label NAME]\n");
        return 0;
    }
    int rc = parse(argc, argv, false, &f);
    if (rc)
        return rc;
    std::string transport, target = to_target(f.addr, &transport);
    if (target.empty()) {
        fprintf(stderr, "grpc-bench: invalid address \"%s\"\n", f.addr.c_str());
        return 64;
    }
    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::milliseconds(f.wait_ms))) {
        fprintf(stderr, "grpc-bench: cannot connect to \"%s\" in %ld ms\n", f.addr.c_str(),
                f.wait_ms);
        return 1;
    }
    auto stub = benchgrpc::Echo::NewStub(channel);
    Client c;
    c.stub = stub.get();
    c.wait_ms = f.wait_ms;
    c.req.set_name(std::string((size_t)f.size, 'x'));

    // The same window as bench/window.c: W calls, each answer starts the next.
    std::vector<uint64_t> sent((size_t)f.in_flight);
    std::vector<uint32_t> lat;
    lat.reserve(1 << 20);
    uint64_t now = now_ns();
    for (unsigned i = 0; i < sent.size(); i++) {
        sent[i] = now;
        c.start(i);
    }
    uint64_t start = now + (uint64_t)(f.warmup * 1e9), end = 0, calls = 0, answers = 0;
    bool measuring = false;
    for (;;) {
        long slot = c.finish();
        if (slot < 0)
            return 1;
        now = now_ns();
        answers++;
        if (!measuring && now >= start) {
            measuring = true;
            start = now;
            end = start + (uint64_t)(f.seconds * 1e9);
        }
        if (measuring) {
            calls++;
            uint64_t ns = now - sent[(size_t)slot];
            lat.push_back(ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns);
            if (now >= end)
                break;
        }
        sent[(size_t)slot] = now;
        c.start((unsigned)slot);
    }
    double secs = (double)(now - start) / 1e9;
    print_line(f, transport, "", calls / secs, "calls/s", calls, answers, secs);
    print_line(f, transport, "-p50", quantile_us(lat, 0.50), "us", calls, answers, secs);
    print_line(f, transport, "-p99", quantile_us(lat, 0.99), "us", calls, answers, secs);
    fflush(stdout);
    // Let the calls still in flight finish before the queue goes away.
    for (long i = 1; i < f.in_flight; i++)
        if (c.finish() < 0)
            break;
    c.cq.Shutdown();
    void *tag;
    bool ok;
    while (c.cq.Next(&tag, &ok))
        delete static_cast<ClientCall *>(tag);
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: grpc-bench server ADDR [--threads N]\n"
                "       grpc-bench client ADDR [--seconds S] [--warmup S] [--size N] "
                "[--in-flight N] [--wait MS] [--label NAME]\n");
        return argc < 2 ? 64 : 0;
    }
    if (strcmp(argv[1], "server") == 0)
        return run_server(argc - 1, argv + 1);
    if (strcmp(argv[1], "client") == 0)
        return run_client(argc - 1, argv + 1);
    fprintf(stderr, "grpc-bench: unknown command \"%s\" (want server or client)\n", argv[1]);
    return 64;
}
