//! Tracing: an actor call and a checkout's saga steps are spans under the request that
//! caused them (the caller's span travels with the actor message), so one request id
//! finds everything a checkout did.

use crate::checkout::{cart_with, checkout, checkout_body};
use crate::helpers::*;

#[tokio::test]
async fn a_checkouts_actor_calls_and_saga_steps_are_traced_under_its_request() {
    let chains = record_spans();
    let app = spawn_app().await;
    app.create_product("SPAN-1", 1200, 10).await;
    let cart = cart_with(&app, &[("SPAN-1", 2)]).await;
    let r = checkout(&app, &cart, Some("span-key"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let chains = chains.lock().unwrap().clone();
    let under_request = |name: &str| {
        chains
            .iter()
            .any(|c| c[0] == name && c.iter().any(|n| n == "request"))
    };
    for step in [
        "saga.reserve",
        "saga.charge",
        "saga.commit",
        "saga.finish_cart",
    ] {
        assert!(
            under_request(step),
            "no {step} span under a request: {chains:?}"
        );
    }
    assert!(under_request("actor_call"), "{chains:?}");
    // A saga step runs in the order actor, called by the cart actor's checkout admission:
    // the chain crosses actors.
    assert!(
        chains
            .iter()
            .any(|c| c[0] == "saga.charge" && c.iter().filter(|n| *n == "actor_call").count() >= 1),
        "{chains:?}"
    );
    app.stop().await;
}
