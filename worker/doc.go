// Package worker is the pool and the lifecycle of one recover request.
//
// A Pool fetches request messages from a Source only for free worker slots,
// decodes each (JSON, bare id, CloudEvents structured or binary), calls the
// Recoverer, and takes every request to a terminal state or hands it back.
// It declares the seams it needs (Source, Delivery, Recoverer,
// DeadLetterer, Resulter, Claims, Pauser, StrandedSource, Limiter) and imports
// neither queue nor codearts; internal/wire adapts those to them.
//
// Invariants:
//   - A request is acked only after its terminal state is durable: for a
//     recovered request, the result event was stored; for a dead-lettered
//     one, the dead letter and then the result event were stored. The ack
//     itself is confirmed by the server (double ack).
//   - Dead letters and result events carry a Nats-Msg-Id derived from the
//     request's stream sequence and store time, so a crash between storing
//     them and acking cannot make two.
//   - A request has one terminal outcome (claim.go): it is claimed (Claims,
//     first writer wins) with its records before any record is published;
//     a delivery, requeued copy or sweep that finds another outcome claimed
//     stores that one's records and acks, and a redelivery or requeued copy
//     reads the claim before calling the API. While a claim cannot be made
//     the delivery keeps the request and tries again (handing it back at
//     the drain timeout); a KV error never dead-letters a request.
//   - While a request is worked on, InProgress is sent every AckWait/3; a
//     request whose heartbeats did not reach NATS for AckWait is dropped
//     (another worker owns it), never acked or dead-lettered.
//   - Throttles, 401s, 403 runs and open-breaker failures never spend a
//     request's attempt budget and never dead-letter it. A request held
//     through a 403-run pause is dead-lettered only if it answers 403
//     again after an answer proved the credentials (the resume).
//   - Flow control is per region: the breakers and credential pauses are the
//     pure state machines of package retry (retry.Breaker, retry.Pause),
//     one of each per region, driven by the gate (gate.go), which reads the
//     clock and performs the fleet-wide consumer pause after unlocking. One
//     region's open breaker or pause holds only its own requests, which give
//     up their fetch slots while they wait (up to holdMax of them), so the
//     pool goes on fetching for the other regions; the consumer is paused
//     for the fleet only when every region in use is paused.
//     The gate is called from handle, not wrapped around the Recoverer as a
//     decorator: a wait at the gate gives up the request's fetch slot, its
//     time is left out of the backoff's budget, a probe's call gets its own
//     timeout, and a 403's verdict decides between dead letter and retry,
//     all of which are the lifecycle's, not the call's.
//   - A 403 waits for its verdict: a success in its region after it (about
//     the job: dead letter), the region paused by a run (retry after the
//     resume), nothing else of its region in flight here for ForbiddenIdle
//     and nothing left in the consumer (a lone 403: dead letter), or
//     ForbiddenHold.

//   - With Config.Verify a request is recovered only once its job was read
//     back enabled (verified in the result event); with
//     Config.SkipEnabled a job read enabled first ends already_enabled
//     without a recover. Their reads wait for the limiter as calls do. A
//     try after one whose recover was applied but whose read back failed
//     reads first, and recovers again only if the job is still disabled.
//   - The request's campaign, when it has one, is repeated in its result
//     event and dead letter.
//   - Shutdown stops fetching, lets in-flight requests finish within the
//     drain timeout and hands the rest back (requeued with the tries they
//     spent, so a hand-back costs no delivery).
//   - Every delivery of a request is traced in one trace (RequestTrace):
//     the producer's traceparent, else one derived from the request's
//     stream sequence and store time, so redeliveries, crashes and other
//     replicas add to the same trace. Its trace id is in the dead letter,
//     the result event and the log lines. With Config.Tracer nil no span
//     is made and no context is touched.
//
// The SPEC lifecycle table, row by row, and the tests that hold it:
//
//	2xx → ack, recovered                          TestMixedWorkload, TestRetryThenSuccess
//	4xx, CB.00060200/201 → dead letter client_error TestMixedWorkload (404, 403 fields), TestSingleForbiddenDeadLettered
//	invalid message → dead letter invalid_request  TestMixedWorkload, TestDecode, FuzzDecode
//	throttled (429, APIG.0308, CB.00060211)        TestMixedWorkload (retries "throttled"), TestFleetRateLimit, retry.TestLimiter*
//	408, 5xx, transport → backoff and retry        TestRetryThenSuccess, retry.TestClassify
//	tries of a delivery used → nak with delay      TestRetryThenSuccess (one redelivery)
//	attempt budget used → retries_exhausted        TestAttemptBudgetExhausted
//	reached MaxDeliver anyway → max_deliveries     TestPanicEveryDeliveryEndsMaxDeliveries
//	401 → pause, probe, resume; nothing dead       TestUnauthorizedPausesThenResumes, retry.TestPause*
//	run of 403s → same pause                       TestForbiddenRunPauses
//	  a lone 403 → client_error without the hold   TestLoneForbiddenDeadLetteredWithoutTheHold, TestForbiddenVerdict*
//	  then 403 again after the resume → client_error TestForbiddenBlockAfterResumeDeadLettered
//	breaker open → wait, probe; nothing dead       TestOutageLongerThanBudget, retry.TestBreaker*
//	one region's trouble never slows another       TestGateRegionsAreIndependent, TestRegionOutageDoesNotStallOthers
//	shutdown → drain, nak the rest                 TestShutdownMidFlight
//	  bounded by the drain timeout from the signal TestShutdownBoundedByDrainTimeout
//	heartbeats keep a slow call                    TestSlowCallNotRedelivered
//	crash without ack → redelivered elsewhere      TestWorkerDiesWithoutAck
//	dead letter stored, crash before ack → one     TestDeadLetterThenCrashMakesOne
//	record or ack fails after the outcome → one    TestOneOutcomeWhenFinishingFails
//	recovered, ack fails on the last delivery      TestStrandedAfterRecoveredKeepsOneOutcome
//	requeued copy of a finished request            TestRequeuedCopyOfFinishedRequest
//	KV down at the claim → kept, then handed back  TestClaimWaitsForTheKVThenHandsBack
//	lease lost → dropped, not acked                TestLeaseLostIsDropped
//	--skip-enabled, job not disabled → already_enabled, no recover  TestSkipEnabledMakesNoRecoverForEnabledJobs
//	--verify, still disabled → retried, then not_recovered          TestRefusingJobEndsNotRecoveredWithVerify
//	--verify, read back failed → next try reads, no second recover  TestFailedVerifyReadIsNotASecondRecover
//	one result event per request                   TestMixedWorkload
//	one trace per request, calls as child spans   TestTracing, TestRequestTrace
//	trace id in dead letters, results, logs        TestTracing, TestTraceIDWithTracingOff
package worker
