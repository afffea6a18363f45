"""Performance figures for the suite: ``make bench`` (``python -m benchmarks``).

Each figure is measured side by side in one run on the machine at hand,
and reported as a ratio or against a floor measured in the same run, so
that the speed of the machine mostly cancels out.  One module per figure:

==========================  ====================================================
:mod:`.peers_compare`       1. resource server: token-protected route vs health route (wrk);
                            8, 9. ours vs the quickstart APIs of :mod:`.peers`, one token / new tokens
:mod:`.token_validation`    2. microseconds per access token: ours, PyJWT, okta-jwt-verifier, floor
:mod:`.sign_in`             3. HTTP-level sign-in through dev issuer and web app, 4. session size
:mod:`.service_tokens`      5. service app: API calls per token request, 32 threads
:mod:`.cold_start`          6. ``make run`` (the launcher) to every component healthy
:mod:`.bff_overhead`        7. the BFF proxy's added latency
:mod:`.dpop_overhead`       10. the API's own time per DPoP request vs a Bearer one
:mod:`.redis_scale`         11. Redis memory per user, 12. /profile with 100k sessions, 13. API workers
==========================  ====================================================

Goals are reported, not enforced: the harness exits 0 whether or not
they are met (it exits non-zero only when a measurement could not be made).
Every load loop is bounded in count and in time, and all traffic goes to
``127.0.0.1``.
"""
