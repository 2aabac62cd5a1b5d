//! The async runtime openraft runs on: tokio, except that openraft's random draws (election
//! timeouts, first tick phases) come from a generator that a simulation can seed.
//!
//! Inside [`seeded`] every draw and every task openraft spawns takes its seed from a
//! task-local counter (a spawned task gets a seed derived from its parent's, the parent's
//! advances), so one seed gives one sequence of timeouts on tokio's single-threaded paused
//! clock and a failing simulation seed replays exactly. Outside that scope — a real server —
//! each draw is seeded from entropy, as openraft's tokio runtime does.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::time::Duration;

use openraft::type_config::async_runtime::AsyncRuntime;
use openraft::type_config::async_runtime::Select2;
use openraft::type_config::async_runtime::Select3;
use openraft::type_config::async_runtime::Select4;
use openraft::OptionalSend;
use rand_rt::rngs::SmallRng;
use rand_rt::SeedableRng;

#[allow(deprecated)] // the non-deprecated path needs a direct dependency on openraft-rt-tokio
type Tokio = openraft::impls::TokioRuntime;

tokio::task_local! {
    static SEED: Cell<u64>;
}

/// Runs `future` with openraft's random draws seeded from `seed` (for simulations).
pub fn seeded<F: Future>(seed: u64, future: F) -> impl Future<Output = F::Output> {
    SEED.scope(Cell::new(seed), future)
}

/// SplitMix64: a bijective mixer; two constants give independent sequences for "the next
/// draw" and "a child task".
fn splitmix64(seed: u64, gamma: u64) -> u64 {
    let z = seed.wrapping_add(gamma);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const NEXT: u64 = 0x6a09_e667_f3bc_c908;
const CHILD: u64 = 0x9e37_79b9_7f4a_7c15;

/// The current task's seed, advanced; `None` outside a seeded scope.
fn take_seed() -> Option<u64> {
    SEED.try_with(|c| {
        let seed = c.get();
        c.set(splitmix64(seed, NEXT));
        seed
    })
    .ok()
}

/// Tokio, with seedable random draws. See the module documentation.
#[derive(Debug)]
pub struct CorralRuntime {
    inner: Tokio,
}

impl AsyncRuntime for CorralRuntime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        match take_seed() {
            Some(seed) => Tokio::spawn(SEED.scope(Cell::new(splitmix64(seed, CHILD)), future)),
            None => Tokio::spawn(future),
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F>(duration: Duration, future: F) -> Self::Timeout<R, F>
    where
        F: Future<Output = R> + OptionalSend,
    {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F>
    where
        F: Future<Output = R> + OptionalSend,
    {
        Tokio::timeout_at(deadline, future)
    }

    fn select2<A, B>(
        a: A,
        b: B,
    ) -> impl Future<Output = Select2<A::Output, B::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
    {
        Tokio::select2(a, b)
    }

    fn select3<A, B, C>(
        a: A,
        b: B,
        c: C,
    ) -> impl Future<Output = Select3<A::Output, B::Output, C::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
    {
        Tokio::select3(a, b, c)
    }

    fn select4<A, B, C, D>(
        a: A,
        b: B,
        c: C,
        d: D,
    ) -> impl Future<Output = Select4<A::Output, B::Output, C::Output, D::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
        D: Future + OptionalSend,
    {
        Tokio::select4(a, b, c, d)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SmallRng::seed_from_u64(take_seed().unwrap_or_else(rand::random))
    }

    type Mpsc = <Tokio as AsyncRuntime>::Mpsc;
    type Watch = <Tokio as AsyncRuntime>::Watch;
    type Oneshot = <Tokio as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        CorralRuntime {
            inner: Tokio::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Tokio::spawn_blocking(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_rt::RngExt;

    #[tokio::test(flavor = "current_thread")]
    async fn one_seed_gives_one_sequence_of_draws() {
        let draws = || async {
            let a: u64 = CorralRuntime::thread_rng().random();
            let child = CorralRuntime::spawn(async { CorralRuntime::thread_rng().random::<u64>() });
            let b: u64 = CorralRuntime::thread_rng().random();
            (a, child.await.unwrap_or_default(), b)
        };
        let first = seeded(7, draws()).await;
        assert_eq!(seeded(7, draws()).await, first);
        assert_ne!(seeded(8, draws()).await, first);
        // Outside a scope: entropy, no panic.
        let _ = draws().await;
    }
}
