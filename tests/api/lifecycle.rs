//! Actor lifecycle: supervision after a panic, passivation, timers, expiry, restarts.

use std::time::Duration;

use emporium::EngineError;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_cart_is_reactivated_from_its_persisted_state_and_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    engine.create_product("P", draft("P", 10)).await.unwrap();
    let victim = engine.create_cart().await.unwrap().cart.id;
    let bystander = engine.create_cart().await.unwrap().cart.id;
    engine.cart_add_item(&victim, "P", 3).await.unwrap();
    engine.cart_add_item(&bystander, "P", 1).await.unwrap();

    emporium::engine::testing::panic_cart(&engine, &victim)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            engine.stats().carts.panicked == 1
        })
        .await
    );

    // The bystander never noticed.
    assert_eq!(
        engine
            .cart_add_item(&bystander, "P", 1)
            .await
            .unwrap()
            .cart
            .lines[0]
            .quantity,
        2
    );
    // The victim comes back with what was persisted, and keeps working.
    let activated = engine.stats().carts.activated;
    assert_eq!(
        engine.cart(&victim).await.unwrap().cart.lines[0].quantity,
        3
    );
    assert_eq!(engine.stats().carts.activated, activated + 1);
    assert_eq!(
        engine
            .cart_add_item(&victim, "P", 1)
            .await
            .unwrap()
            .cart
            .lines[0]
            .quantity,
        4
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_actor_is_passivated_and_transparently_reactivated() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |c| {
        c.passivate_after = Duration::from_millis(100)
    })
    .await;
    engine.create_product("P", draft("P", 10)).await.unwrap();
    let id = cart_of(&engine, "P", 2).await;
    assert!(engine.stats().carts.resident >= 1);

    assert!(
        eventually(Duration::from_secs(5), || async {
            engine.stats().carts.resident == 0
        })
        .await,
        "idle cart actors are stopped"
    );
    assert!(engine.stats().carts.passivated >= 1);
    let activated = engine.stats().carts.activated;
    let view = engine.cart_add_item(&id, "P", 1).await.unwrap();
    assert_eq!(view.cart.lines[0].quantity, 3);
    assert_eq!(engine.stats().carts.activated, activated + 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_resident_cap_idle_actors_go_early_and_busy_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |c| {
        c.passivate_after = Duration::from_secs(3600);
        c.max_resident_actors = 50;
    })
    .await;
    engine.create_product("P", draft("P", 10)).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..300 {
        let id = cart_of(&engine, "P", 1).await;
        ids.push(id);
    }
    // A surge of new carts went over the cap; the idle ones are passivated long before
    // their hour is up, and the count comes back under the cap.
    assert!(
        eventually(Duration::from_secs(10), || async {
            engine.stats().carts.resident <= 50
        })
        .await,
        "resident carts: {}",
        engine.stats().carts.resident
    );
    // Under the cap, the normal idle period applies again: a cart in use stays resident.
    let busy = &ids[0];
    engine.cart_add_item(busy, "P", 1).await.unwrap();
    let passivated = engine.stats().carts.passivated;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(engine.stats().carts.passivated, passivated);
    assert!(engine.stats().carts.resident >= 1);
    // Nothing was lost by the early passivations.
    for id in &ids[1..] {
        assert_eq!(engine.cart(id).await.unwrap().cart.lines[0].quantity, 1);
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_a_passivation_are_rerouted_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |c| {
        c.passivate_after = Duration::from_millis(20)
    })
    .await;
    engine.create_product("P", draft("P", 10)).await.unwrap();
    let id = engine.create_cart().await.unwrap().cart.id;
    // Bursts separated by pauses just over the idle period make calls meet passivations.
    let mut expected = 0;
    for _ in 0..15 {
        for _ in 0..5 {
            engine.cart_add_item(&id, "P", 1).await.unwrap();
            expected += 1;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        engine.cart(&id).await.unwrap().cart.lines[0].quantity,
        expected
    );
    assert!(engine.stats().carts.passivated >= 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reservations_are_released_by_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    // The default ten-minute hold, on a clock the test moves: nothing sleeps.
    let clock = emporium::Clock::manual_from_now();
    let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
    engine.create_product("S", draft("S", 10)).await.unwrap();
    engine.set_on_hand("S", 5).await.unwrap();
    assert_eq!(engine.reserve("S", "r1", 4).await.unwrap().available, 1);
    clock.advance(Duration::from_secs(9 * 60));
    engine.search_flush().await.unwrap();
    assert_eq!(
        engine.inventory("S").await.unwrap().available,
        1,
        "held within its ttl"
    );
    clock.advance(Duration::from_secs(61));
    // The SKU's timer fires on the clock's move; observe through the public read.
    assert!(
        eventually(Duration::from_secs(5), || async {
            engine.inventory("S").await.unwrap().available == 5
        })
        .await
    );
    // A committed reservation cannot be resurrected; an expired one cannot be committed.
    assert!(matches!(
        engine.commit_reservation("S", "r1").await,
        Err(EngineError::UnknownReservation(_))
    ));
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_commit_release_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open_engine(dir.path(), |_| {}).await;
        engine.create_product("S", draft("S", 10)).await.unwrap();
        engine.set_on_hand("S", 10).await.unwrap();
        engine.reserve("S", "keep", 3).await.unwrap();
        engine.reserve("S", "sell", 2).await.unwrap();
        engine.reserve("S", "drop", 1).await.unwrap();
        engine.commit_reservation("S", "sell").await.unwrap();
        engine.release_reservation("S", "drop").await.unwrap();
        engine.shutdown().await.unwrap();
    }
    let engine = open_engine(dir.path(), |_| {}).await;
    let inv = engine.inventory("S").await.unwrap();
    assert_eq!((inv.on_hand, inv.reserved, inv.available), (8, 3, 5));
    // Idempotent retries after the restart.
    assert_eq!(engine.reserve("S", "keep", 3).await.unwrap().reserved, 3);
    assert_eq!(
        engine
            .commit_reservation("S", "sell")
            .await
            .unwrap()
            .on_hand,
        8
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_unchanged_past_its_ttl_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    // The default one-week TTL, on a clock the test moves.
    let clock = emporium::Clock::manual_from_now();
    let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
    engine.create_product("P", draft("P", 10)).await.unwrap();
    let kept = engine.create_cart().await.unwrap().cart.id;
    let dropped = cart_of(&engine, "P", 1).await;
    // Touch `kept` every two days so its expiry slides while `dropped` lapses.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(2 * 24 * 3600));
        engine.cart_add_item(&kept, "P", 1).await.unwrap();
    }
    assert!(matches!(
        engine.cart(&dropped).await,
        Err(EngineError::NotFound("cart"))
    ));
    assert_eq!(engine.cart(&kept).await.unwrap().cart.lines[0].quantity, 4);
    assert_eq!(
        engine.sweep_expired_carts().await.unwrap(),
        0,
        "kept is live"
    );
    clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    assert_eq!(engine.sweep_expired_carts().await.unwrap(), 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cart_is_its_id_until_its_first_change_across_restarts_for_its_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let clock = emporium::Clock::manual_from_now();
    let (kept, idle, issued_at) = {
        let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
        engine.create_product("P", draft("P", 10)).await.unwrap();
        // The product's event is delivered and each subscriber's offset stored first, so
        // that nothing in the background writes while the carts are made.
        let seq = engine.events(0, 1000).await.unwrap().0.last().unwrap().seq;
        assert!(
            eventually(Duration::from_secs(10), || async {
                [
                    emporium::notify::SUBSCRIBER,
                    emporium::recommend::SUBSCRIBER,
                ]
                .iter()
                .all(|name| engine.subscriber_offset(name) >= seq)
            })
            .await
        );
        engine.count_store_ops(true);
        let kept = engine.create_cart().await.unwrap().cart;
        let idle = engine.create_cart().await.unwrap().cart.id;
        // Nothing was written to make them.
        let writes: u64 = engine
            .store_op_counts()
            .iter()
            .map(|(_, c)| c.puts + c.removes)
            .sum();
        assert_eq!(writes, 0, "{:?}", engine.store_op_counts());
        engine.shutdown().await.unwrap();
        (kept.id, idle, kept.created_at)
    };
    // After a restart both are there, empty, as issued.
    let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
    for id in [&kept, &idle] {
        let cart = engine.cart(id).await.unwrap().cart;
        assert!(cart.lines.is_empty());
        assert_eq!(cart.created_at, issued_at);
    }
    // Six days on, the first change stores `kept`, and its lifetime slides from then.
    clock.advance(Duration::from_secs(6 * 24 * 3600));
    engine.cart_add_item(&kept, "P", 2).await.unwrap();
    // Past a week from issue: the idle one is gone, the changed one is not.
    clock.advance(Duration::from_secs(2 * 24 * 3600));
    assert!(matches!(
        engine.cart(&idle).await,
        Err(EngineError::NotFound("cart"))
    ));
    assert!(matches!(
        engine.cart_add_item(&idle, "P", 1).await,
        Err(EngineError::NotFound("cart"))
    ));
    assert_eq!(engine.cart(&kept).await.unwrap().cart.lines[0].quantity, 2);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_cart_ids_are_not_found_without_activating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    for id in ["nope", "../../etc", "00000000000000000000000000000000"] {
        assert!(matches!(
            engine.cart(id).await,
            Err(EngineError::NotFound("cart"))
        ));
    }
    // The well-formed unknown id was activated once, found absent and evicted at once.
    assert!(
        eventually(Duration::from_secs(2), || async {
            engine.stats().carts.resident == 0
        })
        .await
    );
    assert_eq!(engine.stats().carts.activated, 1);
    engine.shutdown().await.unwrap();
}
