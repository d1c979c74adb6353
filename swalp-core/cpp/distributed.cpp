// torch.distributed's engine (c10d) for swalp: a process group made the way
// torch.distributed.init_process_group("env://") makes one, and the three
// collectives data-parallel training needs, on tch tensors.
//
// The rendezvous is a TCPStore at the given host and port: hosted by rank 0,
// or, under torchrun (TORCHELASTIC_USE_AGENT_STORE=True, which the caller
// passes as `agent_store`), by torchrun's agent, every rank a client. Gloo
// serves CPU tensors; NCCL (distributed_nccl.cpp) CUDA tensors.
//
// Every function catches what c10d throws and writes its message into `err`;
// the Rust side (src/distributed) adds the rank and the operation.

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

// Made by distributed_nccl.cpp (a null backend and a message when this
// libtorch has no NCCL).
c10::intrusive_ptr<c10d::Backend> swalp_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                     int rank, int world,
                                                     std::chrono::milliseconds timeout);

namespace {

struct Group {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::Backend> backend;
    std::chrono::milliseconds timeout;
};

void write_error(const char* message, char* err, size_t err_len) {
    if (err_len == 0) {
        return;
    }
    std::strncpy(err, message, err_len - 1);
    err[err_len - 1] = '\0';
}

// Runs `body`, turning an exception into 1 and its message.
template <typename F>
int guarded(F&& body, char* err, size_t err_len) {
    try {
        body();
        return 0;
    } catch (const std::exception& e) {
        write_error(e.what(), err, err_len);
    } catch (...) {
        write_error("unknown C++ exception", err, err_len);
    }
    return 1;
}

// Waits for every started collective; the first failure is rethrown after
// all have been waited for, so no work is left running on freed tensors.
void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>>& works, std::chrono::milliseconds timeout) {
    std::exception_ptr first;
    for (auto& work : works) {
        try {
            work->wait(timeout);
        } catch (...) {
            if (!first) {
                first = std::current_exception();
            }
        }
    }
    if (first) {
        std::rethrow_exception(first);
    }
}

}  // namespace

extern "C" void* swalp_group_new(const char* backend, const char* host, int port, int rank,
                                 int world, int agent_store, long long timeout_ms, char* err,
                                 size_t err_len) {
    Group* made = nullptr;
    guarded(
        [&] {
            auto timeout = std::chrono::milliseconds(timeout_ms);
            c10d::TCPStoreOptions options;
            options.port = static_cast<std::uint16_t>(port);
            options.isServer = !agent_store && rank == 0;
            options.numWorkers = world;
            options.waitWorkers = !agent_store;
            options.timeout = timeout;
            options.multiTenant = !agent_store;
            c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(host, options);
            // torch.distributed keeps the default group's keys under
            // "default_pg/0/"; swalp's own prefix keeps it apart from any
            // other user of the same store.
            auto store = c10::make_intrusive<c10d::PrefixStore>("swalp/", tcp);
            std::string name(backend);
            c10::intrusive_ptr<c10d::Backend> made_backend;
            if (name == "gloo") {
                auto gloo = c10d::ProcessGroupGloo::Options::create_default(timeout);
                made_backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, gloo);
            } else if (name == "nccl") {
                made_backend = swalp_nccl_backend(store, rank, world, timeout);
            } else {
                throw std::invalid_argument("unknown backend " + name + " (gloo, nccl)");
            }
            made = new Group{store, made_backend, timeout};
        },
        err, err_len);
    return made;
}

extern "C" void swalp_group_free(void* group) {
    delete static_cast<Group*>(group);
}

// Sums (op 0) or averages (op 1: NCCL only; Gloo has no average) each of the
// `n` tensors in place across the ranks, the collectives in flight together.
extern "C" int swalp_group_all_reduce(void* group, at::Tensor** tensors, size_t n, int op,
                                      char* err, size_t err_len) {
    auto* g = static_cast<Group*>(group);
    return guarded(
        [&] {
            c10d::AllreduceOptions options;
            options.reduceOp = op == 1 ? c10d::ReduceOp(c10d::ReduceOp::AVG)
                                       : c10d::ReduceOp(c10d::ReduceOp::SUM);
            options.timeout = g->timeout;
            std::vector<c10::intrusive_ptr<c10d::Work>> works;
            for (size_t i = 0; i < n; i++) {
                std::vector<at::Tensor> one{*tensors[i]};
                works.push_back(g->backend->allreduce(one, options));
            }
            wait_all(works, g->timeout);
        },
        err, err_len);
}

// Copies rank `root`'s tensors into every rank's, in place.
extern "C" int swalp_group_broadcast(void* group, at::Tensor** tensors, size_t n, int root,
                                     char* err, size_t err_len) {
    auto* g = static_cast<Group*>(group);
    return guarded(
        [&] {
            c10d::BroadcastOptions options;
            options.rootRank = root;
            options.timeout = g->timeout;
            std::vector<c10::intrusive_ptr<c10d::Work>> works;
            for (size_t i = 0; i < n; i++) {
                std::vector<at::Tensor> one{*tensors[i]};
                works.push_back(g->backend->broadcast(one, options));
            }
            wait_all(works, g->timeout);
        },
        err, err_len);
}

extern "C" int swalp_group_barrier(void* group, char* err, size_t err_len) {
    auto* g = static_cast<Group*>(group);
    return guarded(
        [&] {
            c10d::BarrierOptions options;
            options.timeout = g->timeout;
            auto work = g->backend->barrier(options);
            work->wait(g->timeout);
        },
        err, err_len);
}
