//! What a panic does to the requests in flight: the Worker answers its own with a JSON `internal`
//! error, and a Durable Object aborts, which fails the requests it was serving (the Worker
//! answers those with `internal` too) and resets it.
//!
//! Panics abort in wasm: the instance traps, and every handler future in it (not only the one
//! that panicked) stops for good, so their promises never settle and the requests would hang.
//! The panic hook therefore runs, before the trap, the panic action of every request in flight
//! in the instance. The hook installed by workers-rs runs first: it logs the panic's message and
//! location ("Rust panic: panicked at src/…") and marks the instance so that the next event runs
//! on a freshly initialised one.

use js_sys::{Array, Function, Object, Promise, Reflect};
use std::cell::{Cell, RefCell};
use std::future::Future;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::future_to_promise;
use worker::worker_sys::web_sys;

type PanicAction = Box<dyn Fn()>;

thread_local! {
    /// The panic action of each request in flight, by registration number.
    static IN_FLIGHT: RefCell<Vec<(u64, PanicAction)>> = const { RefCell::new(Vec::new()) };
    static REGISTRATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Adds the panic actions to the panic hook (once, at start-up).
pub fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let actions = IN_FLIGHT.with(|in_flight| in_flight.try_borrow_mut().map(|mut list| std::mem::take(&mut *list)));
        for (_, action) in actions.unwrap_or_default() {
            action();
        }
    }));
}

/// A request in flight: its panic action is registered until this is dropped.
struct InFlight(u64);

impl InFlight {
    fn register(action: impl Fn() + 'static) -> InFlight {
        let number = REGISTRATIONS.with(|n| n.replace(n.get() + 1));
        IN_FLIGHT.with(|in_flight| in_flight.borrow_mut().push((number, Box::new(action))));
        InFlight(number)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.with(|in_flight| in_flight.borrow_mut().retain(|(number, _)| *number != self.0));
    }
}

/// The Worker's answer: the promise of `handler`'s response, or `on_panic` if the instance
/// panics first (a fallback promise, raced against the handler's, that the hook resolves).
/// `on_panic` is made in advance: the hook may run in another request's context (a Durable
/// Object's, in the same isolate), and a response belongs to the context that made it.
pub fn respond(handler: impl Future<Output = web_sys::Response> + 'static, on_panic: web_sys::Response) -> Promise {
    let mut resolve = None;
    let fallback = Promise::new(&mut |resolve_fallback, _| resolve = Some(resolve_fallback));
    let resolve: Function = resolve.expect("a promise runs its executor at once");
    let in_flight = InFlight::register(move || {
        let _ = resolve.call1(&JsValue::UNDEFINED, &on_panic);
    });
    let handled = future_to_promise(async move {
        let response = handler.await;
        drop(in_flight);
        Ok(JsValue::from(response))
    });
    Promise::race(&Array::of2(&handled, &fallback))
}

/// Runs a Durable Object's handler; if the instance panics meanwhile, the object is aborted
/// (`ctx.abort()` on the runtime's `state` object), which fails the requests it was serving.
pub async fn abort_on_panic<F: Future>(state: &Object, handler: F) -> F::Output {
    let state = state.clone();
    let _in_flight = InFlight::register(move || {
        // Later, from JavaScript: abort() throws, and must not unwind through the panicking wasm.
        let abort = Reflect::get(&state, &JsValue::from_str("abort")).ok().and_then(|f| f.dyn_into::<Function>().ok());
        let queue = Reflect::get(&js_sys::global(), &JsValue::from_str("queueMicrotask")).ok().and_then(|f| f.dyn_into::<Function>().ok());
        if let (Some(abort), Some(queue)) = (abort, queue) {
            let _ = queue.call1(&JsValue::UNDEFINED, &abort.bind1(&state, &JsValue::from_str("the object panicked; see the log")));
        }
    });
    handler.await
}

// Promises need a JavaScript runtime: this runs under Node (wasm-bindgen-test). A panic cannot be
// tested there (it aborts the test instance); miniflare-tests/panic.test.mjs covers it.
#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::wasm_bindgen_futures::JsFuture;

    fn empty_response(status: u16) -> web_sys::Response {
        worker::Response::empty().unwrap().with_status(status).into()
    }

    #[wasm_bindgen_test]
    async fn without_a_panic_the_handlers_response_is_sent() {
        let promise = respond(async { empty_response(201) }, empty_response(500));
        let response: web_sys::Response = JsFuture::from(promise).await.unwrap().unchecked_into();
        assert_eq!(response.status(), 201);
        assert!(IN_FLIGHT.with(|in_flight| in_flight.borrow().is_empty()), "no panic action stays registered after the handler");
    }
}
