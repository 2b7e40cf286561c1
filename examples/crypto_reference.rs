//! The crypto-bound reference of an exchange, for `scripts/bench-load.sh`: bare aws-lc-rs RS256
//! verify (2048-bit key) + ES256 sign, keys parsed once, on `threads` threads for `seconds`.
//!
//! ```sh
//! cargo run --release --example crypto_reference -- [seconds] [threads]
//! ```
//!
//! Prints `pairs_per_second=<total over all threads>`: the exchange rate a gateway doing nothing
//! but those two operations would reach. The message is the size of a real signing input.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().map_or(3.0, |s| s.parse().expect("seconds"));
    let threads: usize = args.get(1).map_or(1, |s| s.parse().expect("threads"));

    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa key");
    let message = vec![b'e'; 480];
    let mut rsa_signature = vec![0; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut rsa_signature)
        .expect("rsa sign");
    let components = RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
    let public = RsaPublicKeyComponents {
        n: components.n.as_slice(),
        e: components.e.as_slice(),
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .expect("parsed public key");
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec key");

    let run_for = Duration::from_secs_f64(seconds);
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let rng = SystemRandom::new();
                    let started = Instant::now();
                    let mut pairs = 0u64;
                    while started.elapsed() < run_for {
                        for _ in 0..64 {
                            public
                                .verify_sig(&message, &rsa_signature)
                                .expect("verifies");
                            std::hint::black_box(ec.sign(&rng, &message).expect("signs"));
                        }
                        pairs += 64;
                    }
                    (pairs as f64 / started.elapsed().as_secs_f64()) as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    println!("pairs_per_second={total}");
}
