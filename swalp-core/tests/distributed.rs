//! Process groups on this machine: two ranks on localhost over Gloo, each a
//! child process running this test binary again (as torchrun would start
//! them), checked by the parent.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use swalp_core::distributed::{Backend, GradientBuckets, ProcessGroup, Rendezvous};
use swalp_core::tch::{Device, Kind, Tensor};

/// Set in the children: which test body to run as a rank.
const WORKER: &str = "SWALP_TEST_DISTRIBUTED_WORKER";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs test `name` as `world` ranks with torchrun's variables and returns
/// each rank's output.
fn ranks(name: &str, world: usize, timeout_s: &str) -> Vec<Output> {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port().to_string();
    let children: Vec<_> = (0..world)
        .map(|rank| {
            Command::new(&exe)
                .args(["--exact", name, "--nocapture", "--test-threads", "1"])
                .env(WORKER, name)
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("SWALP_DIST_TIMEOUT", timeout_s)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn rank {rank}: {e}"))
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn is_worker(name: &str) -> bool {
    std::env::var(WORKER).is_ok_and(|w| w == name)
}

fn join() -> ProcessGroup {
    let rendezvous = Rendezvous::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no rendezvous in the environment"));
    ProcessGroup::join(&rendezvous, Backend::Gloo).unwrap_or_else(|e| panic!("{e}"))
}

/// `rank` of `world` meeting at `127.0.0.1:port` (a world of one
/// included, which `Rendezvous::from_env` leaves a lone process), its
/// local rank its rank.
fn on_localhost(rank: usize, world: usize, port: u16, timeout_s: u64) -> Rendezvous {
    Rendezvous {
        rank,
        world_size: world,
        local_rank: rank,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        agent_store: false,
        timeout: Duration::from_secs(timeout_s),
        launcher: swalp_core::distributed::Launcher::Torchrun,
    }
}

fn assert_all_succeeded(outputs: &[Output]) {
    for (rank, out) in outputs.iter().enumerate() {
        assert!(
            out.status.success(),
            "rank {rank}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn two_ranks_sum_broadcast_and_meet() {
    const NAME: &str = "two_ranks_sum_broadcast_and_meet";
    if !is_worker(NAME) {
        assert_all_succeeded(&ranks(NAME, 2, "60"));
        return;
    }
    let group = join();
    let rank = group.rank() as f64;
    assert_eq!(group.world_size(), 2);
    // Sums: rank r holds r + 1 and 10·(r + 1) (f32 and f64 buffers).
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * (rank + 1.0);
    let b = Tensor::from_slice(&[10.0f64]) * (rank + 1.0);
    group
        .all_reduce_sum(&[a.shallow_clone(), b.shallow_clone()], "test sum")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        Vec::<f32>::try_from(&a).unwrap_or_default(),
        [3.0, 6.0, 9.0]
    );
    assert_eq!(b.double_value(&[0]), 30.0);
    // Broadcast from rank 1.
    let c = Tensor::full([4], rank, (Kind::Float, Device::Cpu));
    group
        .broadcast(&[c.shallow_clone()], 1, "test broadcast")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Vec::<f32>::try_from(&c).unwrap_or_default(), [1.0; 4]);
    group
        .barrier("test barrier")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn gradient_buckets_average_a_models_gradients() {
    const NAME: &str = "gradient_buckets_average_a_models_gradients";
    if !is_worker(NAME) {
        assert_all_succeeded(&ranks(NAME, 2, "60"));
        return;
    }
    let group = join();
    let rank = group.rank() as f64;
    let opts = (Kind::Float, Device::Cpu);
    let params: Vec<Tensor> = [vec![4, 3], vec![3], vec![1000], vec![2, 2]]
        .into_iter()
        .map(|shape| Tensor::zeros(shape, opts).set_requires_grad(true))
        .collect();
    for (i, p) in params.iter().enumerate() {
        (p * (rank + 1.0) * (i as f64 + 1.0))
            .sum(Kind::Float)
            .backward();
    }
    // 2 KiB buckets: the 1000-element parameter (4000 bytes) has one of its
    // own, between the small ones before and after it.
    let mut buckets = GradientBuckets::new(&params, 2048).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(buckets.buffers().len(), 3);
    buckets.gather().unwrap_or_else(|e| panic!("{e}"));
    group
        .all_reduce_sum(&buckets.buffers(), "gradients")
        .unwrap_or_else(|e| panic!("{e}"));
    buckets.scatter().unwrap_or_else(|e| panic!("{e}"));
    for (i, p) in params.iter().enumerate() {
        // (1 + 2)·(i + 1) on both ranks.
        let expected = 3.0 * (i as f64 + 1.0);
        let g = p.grad();
        assert_eq!(g.min().double_value(&[]), expected, "parameter {i}");
        assert_eq!(g.max().double_value(&[]), expected, "parameter {i}");
    }
}

#[test]
fn a_rank_that_dies_fails_the_others_with_a_message() {
    const NAME: &str = "a_rank_that_dies_fails_the_others_with_a_message";
    if !is_worker(NAME) {
        let started = Instant::now();
        let outputs = ranks(NAME, 2, "5");
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "took {:?}",
            started.elapsed()
        );
        assert_all_succeeded(&outputs);
        let said = String::from_utf8_lossy(&outputs[0].stdout);
        assert!(
            said.contains("rank 0 of 2: all-reduce after the loss failed"),
            "{said}"
        );
        return;
    }
    let group = join();
    if group.rank() == 1 {
        // Gone without a word, as a killed process.
        std::process::exit(0);
    }
    let t = Tensor::ones([8], (Kind::Float, Device::Cpu));
    let e = group
        .all_reduce_sum(&[t], "all-reduce after the loss")
        .expect_err("the other rank is gone");
    println!("{e}");
    assert!(!e.to_string().contains('\n'));
}

/// Synchronised BatchNorm on two ranks, each with half of a batch (rows
/// r, r + 2, ...), against libtorch's `batch_norm` on the whole batch in
/// one process: the outputs, the input gradients, the summed parameter
/// gradients and the running statistics.
#[test]
fn synchronised_batchnorm_is_batchnorm_over_the_whole_batch() {
    use std::sync::Arc;
    use swalp_core::batchnorm::{BatchNorm, BatchNormMomentum};
    use swalp_core::tch::nn;

    const NAME: &str = "synchronised_batchnorm_is_batchnorm_over_the_whole_batch";
    if !is_worker(NAME) {
        assert_all_succeeded(&ranks(NAME, 2, "60"));
        return;
    }
    let group = Arc::new(join());
    let rank = group.rank() as i64;
    let opts = (Kind::Float, Device::Cpu);
    swalp_core::tch::manual_seed(11);
    // Channels of different scales and offsets (within what f32 holds
    // well: an offset far above the spread costs any f32 BatchNorm,
    // libtorch's included, the mean's last bits).
    let x = Tensor::randn([10, 3, 4, 4], opts)
        * Tensor::from_slice(&[1.0f32, 3.0, 0.5]).view([1, 3, 1, 1])
        + Tensor::from_slice(&[0.0f32, 2.0, -1.0]).view([1, 3, 1, 1]);
    let upstream = Tensor::randn([10, 3, 4, 4], opts);
    let rows = Tensor::arange_start_step(rank, 10, 2, (Kind::Int64, Device::Cpu));

    let layer = |sync: Option<Arc<ProcessGroup>>| {
        let vs = nn::VarStore::new(Device::Cpu);
        let momentum = BatchNormMomentum::default();
        momentum.set_sync(sync);
        let bn = BatchNorm::new(vs.root() / "bn", 3, &momentum);
        // Parameters other than 1 and 0, so that their gradients matter.
        swalp_core::tch::no_grad(|| {
            bn.weight
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.5f32, 2.0, -1.0]));
            bn.bias
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.1f32, -0.2, 0.3]));
        });
        (vs, bn)
    };
    // One process, the whole batch.
    let (_vs_one, one) = layer(None);
    let x_one = x.copy().set_requires_grad(true);
    let y_one = one
        .f_forward_t(&x_one, true)
        .unwrap_or_else(|e| panic!("{e}"));
    (&y_one * &upstream).sum(Kind::Float).backward();
    // This rank's half, synchronised.
    let (_vs_two, two) = layer(Some(Arc::clone(&group)));
    let x_two = x.index_select(0, &rows).set_requires_grad(true);
    let y_two = two
        .f_forward_t(&x_two, true)
        .unwrap_or_else(|e| panic!("{e}"));
    (&y_two * upstream.index_select(0, &rows))
        .sum(Kind::Float)
        .backward();

    let close = |what: &str, got: &Tensor, want: &Tensor, tolerance: f64| {
        let scale = want.abs().max().double_value(&[]).max(1e-30);
        let diff = (got - want).abs().max().double_value(&[]) / scale;
        assert!(diff <= tolerance, "{what}: relative difference {diff:e}");
    };
    close("output", &y_two, &y_one.index_select(0, &rows), 1e-6);
    close(
        "input gradient",
        &x_two.grad(),
        &x_one.grad().index_select(0, &rows),
        1e-5,
    );
    for (what, mine, whole) in [
        ("weight gradient", two.weight.grad(), one.weight.grad()),
        ("bias gradient", two.bias.grad(), one.bias.grad()),
    ] {
        let summed = mine.copy();
        group
            .all_reduce_sum(&[summed.shallow_clone()], "test")
            .unwrap_or_else(|e| panic!("{e}"));
        close(what, &summed, &whole, 1e-5);
    }
    close("running mean", &two.running_mean, &one.running_mean, 1e-6);
    close("running variance", &two.running_var, &one.running_var, 1e-5);
}

/// `quant.communication`'s reduction on two ranks: each rank's buckets are
/// rounded with draws of its own, summed exactly and the sum rounded with
/// draws every rank shares, Q(Q₀(a) + Q₁(b)), bucket after bucket; the
/// gradients that come back are that sum, bit for bit, on both ranks.
#[test]
fn communication_rounds_each_contribution_and_the_sum() {
    use swalp_core::distributed::Communication;
    use swalp_core::{QuantRng, Quantizer};
    use swalp_formats as _;

    const NAME: &str = "communication_rounds_each_contribution_and_the_sum";
    if !is_worker(NAME) {
        assert_all_succeeded(&ranks(NAME, 2, "60"));
        return;
    }
    let group = join();
    let rank = group.rank();
    let quantizer: Quantizer =
        r#"format = "bfp", wl = 6, block = { size = 16, dim = 0 }, rounding = "stochastic""#
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
    let opts = (Kind::Float, Device::Cpu);
    // Rank r's gradients, which every rank can make: both ranks compute
    // the expected sum from both contributions.
    let model = |r: usize| -> (Vec<Tensor>, GradientBuckets) {
        swalp_core::tch::manual_seed(100 + r as i64);
        let params: Vec<Tensor> = [vec![40, 3], vec![3], vec![300], vec![2, 2]]
            .into_iter()
            .map(|shape| Tensor::zeros(shape, opts).set_requires_grad(true))
            .collect();
        for p in &params {
            (p * Tensor::randn(p.size(), opts))
                .sum(Kind::Float)
                .backward();
        }
        // 512-byte buckets: three of them.
        let buckets = GradientBuckets::new(&params, 512).unwrap_or_else(|e| panic!("{e}"));
        (params, buckets)
    };
    let seed_of_rank = |r: usize| 1000 + r as u64;
    const SHARED: u64 = 7;
    let contributions: Vec<Vec<Tensor>> = (0..2)
        .map(|r| {
            let (_, mut b) = model(r);
            b.gather().unwrap_or_else(|e| panic!("{e}"));
            let mut rng = QuantRng::new(seed_of_rank(r));
            b.buffers()
                .iter()
                .map(|x| {
                    quantizer
                        .quantize(x, &mut rng)
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect()
        })
        .collect();
    let mut shared = QuantRng::new(SHARED);
    let expected: Vec<Tensor> = (0..contributions[0].len())
        .map(|k| {
            let sum = &contributions[0][k] + &contributions[1][k];
            quantizer
                .quantize(&sum, &mut shared)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    assert_eq!(expected.len(), 3);

    let (params, mut buckets) = model(rank);
    let (mut mine, mut sum) = (QuantRng::new(seed_of_rank(rank)), QuantRng::new(SHARED));
    let extra = Tensor::from_slice(&[rank as f64 + 1.0]);
    buckets
        .all_reduce_sum(
            &group,
            &[extra.shallow_clone()],
            Some(Communication {
                quantizer: &quantizer,
                contribution: &mut mine,
                sum: &mut sum,
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // One stream per bucket from each generator.
    assert_eq!((mine.streams_used(), sum.streams_used()), (3, 3));
    // The extra tensors are summed exactly.
    assert_eq!(extra.double_value(&[0]), 3.0);
    // The gradients that came back are the expected sums.
    let mut back = GradientBuckets::new(&params, 512).unwrap_or_else(|e| panic!("{e}"));
    back.gather().unwrap_or_else(|e| panic!("{e}"));
    for (k, (got, want)) in back.buffers().iter().zip(&expected).enumerate() {
        assert!(got.equal(want), "bucket {k}: {got} against {want}");
    }
    // The contributions were rounded with different draws: with rank 0's
    // draws for both, the sum differs.
    let mut same = QuantRng::new(seed_of_rank(0));
    let (_, mut other) = model(1);
    other.gather().unwrap_or_else(|e| panic!("{e}"));
    let alike = other.buffers()[2].shallow_clone();
    let with_rank_0_draws = quantizer
        .quantize(&alike, &mut {
            let _ = same.next_stream();
            let _ = same.next_stream();
            same
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!with_rank_0_draws.equal(&contributions[1][2]));
}

/// NCCL on the GPUs: one rank a GPU (NCCL refuses two ranks on one), two
/// when there are two, each summing and broadcasting CUDA tensors. Part of
/// `scripts/gpu-check`; skipped without a GPU.
#[test]
fn gpu_nccl_sums_and_broadcasts_cuda_tensors() {
    use swalp_core::tch::Cuda;

    const NAME: &str = "gpu_nccl_sums_and_broadcasts_cuda_tensors";
    let gpus = Cuda::device_count().max(0) as usize;
    if !is_worker(NAME) {
        if gpus == 0 {
            println!("skipped: no CUDA device (NCCL needs one GPU a rank)");
            return;
        }
        assert_all_succeeded(&ranks(NAME, gpus.min(2), "120"));
        return;
    }
    // Built from the variables directly: a world of one GPU is a group too.
    let var = |name: &str| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not set"))
    };
    let rendezvous = on_localhost(
        var("RANK"),
        var("WORLD_SIZE"),
        var("MASTER_PORT") as u16,
        120,
    );
    let group = ProcessGroup::join(&rendezvous, Backend::Nccl).unwrap_or_else(|e| panic!("{e}"));
    let (rank, world) = (group.rank() as f64, group.world_size() as f64);
    let device = group.device();
    assert_eq!(device, Device::Cuda(rendezvous.local_rank));
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(device) * (rank + 1.0);
    group
        .all_reduce_sum(&[a.shallow_clone()], "NCCL sum")
        .unwrap_or_else(|e| panic!("{e}"));
    let total = world * (world + 1.0) / 2.0;
    assert_eq!(
        Vec::<f32>::try_from(&a.to_device(Device::Cpu)).unwrap_or_default(),
        [total as f32, 2.0 * total as f32, 3.0 * total as f32]
    );
    let c = Tensor::full([4], rank, (Kind::Float, device));
    group
        .broadcast(&[c.shallow_clone()], 0, "NCCL broadcast")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        Vec::<f32>::try_from(&c.to_device(Device::Cpu)).unwrap_or_default(),
        [0.0; 4]
    );
    // A CPU tensor is refused by name, not handed to NCCL.
    let cpu = Tensor::ones([2], (Kind::Float, Device::Cpu));
    let refused = group
        .all_reduce_sum(&[cpu], "NCCL sum of a CPU tensor")
        .expect_err("NCCL takes CUDA tensors");
    println!("{refused}");
    group
        .barrier("NCCL barrier")
        .unwrap_or_else(|e| panic!("{e}"));
    println!("NCCL: rank {rank} of {world} on {device:?}: sum, broadcast and barrier agree");
}

/// The shim is built with c10d's NCCL backend (with-torch supplies the CUDA
/// headers the wheel lacks): on a machine without a GPU, joining an NCCL
/// group reaches libtorch's ProcessGroupNCCL, which refuses in one line,
/// rather than the stub that says NCCL was not built.
#[test]
fn nccl_is_built_and_refuses_a_machine_without_gpus() {
    if swalp_core::tch::Cuda::device_count() > 0 {
        println!(
            "skipped: this machine has a GPU (gpu_nccl_sums_and_broadcasts_cuda_tensors runs NCCL)"
        );
        return;
    }
    let rendezvous = on_localhost(0, 1, free_port(), 20);
    let e = ProcessGroup::join(&rendezvous, Backend::Nccl)
        .err()
        .unwrap_or_else(|| panic!("an NCCL group without a GPU"));
    let said = e.to_string();
    println!("{said}");
    assert!(!said.contains("not built"), "{said}");
    assert!(
        said.contains("ProcessGroupNCCL") && said.contains("GPU"),
        "{said}"
    );
    assert!(said.starts_with("rank 0 of 1"), "{said}");
    assert!(!said.contains('\n'), "{said}");
}
