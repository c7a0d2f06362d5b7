"""Shared helpers for the lambda_ops tests: scenario paths, tool calls, intended fixes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import ToolMessage

from lambda_ops.aws import SimulatedAccount
from lambda_ops.scenario import Scenario, load_scenario
from lambda_ops.tools import build_tools

REPO = Path(__file__).resolve().parents[2]
SCENARIOS_DIR = REPO / "evals" / "lambda_ops" / "scenarios"

# (tool, args) steps per scenario. "fix" is what a careful operator does; "wrong" is the
# tempting mistake the scenario is built to catch, "revert" undoes it; "decoy" is a
# collateral change that must fail the run on its own. "evidence" are (tool, args,
# text) reads whose JSON output must contain text: the data the lesson rests on is
# really in the account. Questions (cloudwatch_query) also carry the right "answer"
# (must match the scenario's expect) and a plausible "wrong_answer" from the wrong
# window (must not); their "fix" is empty (nothing to change) and "evidence" pins
# the reads that produce both numbers; "wrong" is changing something anyway.
Step = tuple[str, dict[str, Any]]
Evidence = tuple[str, dict[str, Any], str]


def _mem(fn: str, mb: int) -> list[Step]:
    return [("update_memory", {"function_name": fn, "memory_mb": mb})]


def _timeout(fn: str, s: int) -> list[Step]:
    return [("update_timeout", {"function_name": fn, "timeout_s": s})]


def _reserve(fn: str, n: int) -> list[Step]:
    return [("set_reserved_concurrency", {"function_name": fn, "concurrency": n})]


def _pc(fn: str, qualifier: str, n: int) -> list[Step]:
    return [("set_provisioned_concurrency", {"function_name": fn, "qualifier": qualifier, "concurrency": n})]


def _alias(fn: str, alias: str, version: str | int) -> list[Step]:
    return [("update_alias", {"function_name": fn, "alias": alias, "version": version})]


def _logs(fn: str, pattern: str, hours: int, needle: str, limit: int = 50) -> Evidence:
    return ("search_logs", {"function_name": fn, "pattern": pattern, "hours": hours, "limit": limit}, needle)


def _metric(fn: str, metric: str, hours: int, needle: str, period_s: int = 300) -> Evidence:
    return ("get_function_metrics", {"function_name": fn, "metrics": [metric], "hours": hours, "period_s": period_s}, needle)


def _config(fn: str, needle: str) -> Evidence:
    return ("get_function_configuration", {"function_name": fn}, needle)


PLAYBOOK: dict[str, dict[str, Any]] = {
    # -- the original six (their evidence is checked in assert_original_evidence) --
    "lambda_timeout": {
        "wrong": _mem("checkout-api", 1024), "revert": _mem("checkout-api", 512),
        "fix": _timeout("checkout-api", 10), "decoy": _timeout("checkout-worker", 10),
    },
    "lambda_memory": {
        "wrong": _timeout("image-resizer", 120), "revert": _timeout("image-resizer", 30),
        "fix": _mem("image-resizer", 1024), "decoy": _mem("thumbnail-cache", 512),
    },
    "lambda_cold_start": {
        "wrong": _mem("search-api", 2048), "revert": _mem("search-api", 1024),
        "fix": _pc("search-api", "live", 8), "decoy": _mem("search-indexer", 3008),
    },
    "lambda_throttling": {
        "wrong": _reserve("orders-processor", 20), "revert": [],
        "fix": _reserve("orders-processor", 50), "decoy": _reserve("reports-api", 200),
    },
    "lambda_cost": {
        "wrong": _mem("invoice-api", 128), "revert": [],
        "fix": _mem("invoice-api", 512), "decoy": _mem("invoice-exporter", 1024),
    },
    "lambda_errors": {
        "wrong": _mem("payments-api", 2048), "revert": _mem("payments-api", 1024),
        "fix": _alias("payments-api", "live", 6), "decoy": _alias("payments-webhook", "live", "2"),
    },
    # -- timeouts: cover the slowest observed upstream call, leave memory alone --
    "timeout_pdf_renderer": {
        "wrong": _mem("pdf-renderer", 2048), "revert": _mem("pdf-renderer", 1024),
        "fix": _timeout("pdf-renderer", 90), "decoy": _timeout("pdf-archiver", 90),
        "evidence": [_logs("pdf-renderer", "chart-service", 24, "52 s"),
                     _logs("pdf-renderer", '"Task timed out"', 24, "Task timed out after 30.00 seconds")],
    },
    "timeout_nightly_etl": {
        "wrong": _mem("etl-loader", 4096), "revert": _mem("etl-loader", 2048),
        "fix": _timeout("etl-loader", 600), "decoy": _timeout("etl-notifier", 600),
        "evidence": [_logs("etl-loader", "COPY", 168, "took 410 s"),
                     _logs("etl-loader", '"Task timed out"', 168, "Task timed out after 300.00 seconds")],
    },
    "timeout_address_validator": {
        "wrong": _mem("address-validator", 512), "revert": _mem("address-validator", 256),
        "fix": _timeout("address-validator", 15), "decoy": _timeout("address-formatter", 15),
        "evidence": [_logs("address-validator", "geocoder", 24, "9.3 s"),
                     _logs("address-validator", '"Task timed out"', 24, "Task timed out after 5.00 seconds")],
    },
    "timeout_shipping_quotes": {
        "wrong": _mem("quote-calculator", 1536), "revert": _mem("quote-calculator", 768),
        "fix": _timeout("quote-calculator", 20), "decoy": _timeout("label-printer", 20),
        "evidence": [_logs("quote-calculator", "ParcelFast", 24, "11800 ms"),
                     _logs("quote-calculator", '"Task timed out"', 24, "Task timed out after 6.00 seconds")],
    },
    "timeout_vat_lookup": {
        "wrong": _mem("tax-calculator", 1024), "revert": _mem("tax-calculator", 512),
        "fix": _timeout("tax-calculator", 20), "decoy": _timeout("tax-report-export", 20),
        "evidence": [_logs("tax-calculator", "VIES", 24, "took 14.2 s"),
                     _logs("tax-calculator", '"Task timed out"', 24, "Task timed out after 8.00 seconds"),
                     _metric("tax-calculator", "MaxMemoryUsed", 36, '"max": 138')],
    },
    "timeout_listing_reindex": {
        "wrong": _mem("listing-reindexer", 3072), "revert": _mem("listing-reindexer", 1536),
        "fix": _timeout("listing-reindexer", 300), "decoy": _timeout("listing-snapshot", 300),
        "evidence": [_logs("listing-reindexer", "_bulk", 24, "took 171 s"),
                     _logs("listing-reindexer", '"Task timed out"', 24, "Task timed out after 120.00 seconds", 5)],
    },
    # -- memory: the peak sits at the limit and the runtime is killed: raise memory --
    "memory_csv_importer": {
        "wrong": _timeout("csv-importer", 300), "revert": _timeout("csv-importer", 120),
        "fix": _mem("csv-importer", 1024), "decoy": _mem("csv-validator", 1024),
        "evidence": [_metric("csv-importer", "MaxMemoryUsed", 48, '"max": 512'),
                     _logs("csv-importer", '"signal: killed"', 24, "Runtime.ExitError", 5)],
    },
    "memory_java_heap": {
        "wrong": _timeout("statement-builder", 120), "revert": _timeout("statement-builder", 60),
        "fix": _mem("statement-builder", 2048), "decoy": _mem("statement-mailer", 2048),
        "evidence": [_logs("statement-builder", "OutOfMemoryError", 24, "Java heap space", 5),
                     _metric("statement-builder", "MaxMemoryUsed", 24, '"max": 1024')],
    },
    "memory_frame_extractor": {
        "wrong": _timeout("frame-extractor", 900), "revert": _timeout("frame-extractor", 300),
        "fix": _mem("frame-extractor", 3072), "decoy": _mem("frame-indexer", 3072),
        "evidence": [_logs("frame-extractor", '"Cannot allocate memory"', 24, "3840x2160", 5),
                     _metric("frame-extractor", "MaxMemoryUsed", 24, '"max": 1536')],
    },
    "memory_podcast_encoder": {
        "wrong": _timeout("podcast-encoder", 900), "revert": _timeout("podcast-encoder", 600),
        "fix": _mem("podcast-encoder", 1536), "decoy": _mem("rss-publisher", 1536),
        "evidence": [_logs("podcast-encoder", '"signal: killed"', 24, "Runtime.ExitError", 5),
                     _metric("podcast-encoder", "MaxMemoryUsed", 24, '"max": 768', 600)],
    },
    "memory_document_bundler": {
        "wrong": _timeout("document-bundler", 900), "revert": _timeout("document-bundler", 300),
        "fix": _mem("document-bundler", 2048), "decoy": _mem("bundle-notifier", 2048),
        "evidence": [_logs("document-bundler", '"heap out of memory"', 24, "Reached heap limit", 5),
                     _logs("document-bundler", '"signal: killed"', 24, "Runtime.ExitError", 5),
                     _metric("document-bundler", "MaxMemoryUsed", 24, '"max": 1024')],
    },
    "memory_invoice_ocr": {
        "wrong": _timeout("invoice-ocr", 600), "revert": _timeout("invoice-ocr", 180),
        "fix": _mem("invoice-ocr", 4096), "decoy": _mem("ocr-archiver", 4096),
        "evidence": [_logs("invoice-ocr", "MemoryError", 24, "600 dpi", 5),
                     _logs("invoice-ocr", '"signal: killed"', 24, "Runtime.ExitError", 5),
                     _metric("invoice-ocr", "MaxMemoryUsed", 24, '"max": 2048')],
    },
    # -- cold starts: Init Duration on a fraction of requests: provisioned concurrency --
    "cold_start_login_api": {
        "wrong": _mem("login-api", 4096), "revert": _mem("login-api", 2048),
        "fix": _pc("login-api", "prod", 15), "decoy": _mem("login-audit", 2048),
        "evidence": [_logs("login-api", '"Init Duration"', 24, "Init Duration: 4", 5),
                     ("list_versions", {"function_name": "login-api"}, '{"name": "prod", "version": "21"}')],
    },
    "cold_start_recommendations": {
        "wrong": _mem("recs-api", 6144), "revert": _mem("recs-api", 3008),
        "fix": _pc("recs-api", "live", 5), "decoy": _mem("recs-trainer", 8192),
        "evidence": [_logs("recs-api", '"Init Duration"', 24, "Init Duration: 3", 5)],
    },
    "cold_start_price_api": {
        "wrong": _mem("price-api", 1024), "revert": _mem("price-api", 512),
        "fix": _pc("price-api", "current", 10), "decoy": _timeout("price-sync", 600),
        "evidence": [_logs("price-api", '"Init Duration"', 24, "Init Duration: 2", 5),
                     _config("price-api", '"subnets": ["subnet-0')],
    },
    "cold_start_catalog_graphql": {
        "wrong": _mem("catalog-graphql", 3008), "revert": _mem("catalog-graphql", 1536),
        "fix": _pc("catalog-graphql", "production", 25), "decoy": _mem("catalog-importer", 2048),
        "evidence": [_logs("catalog-graphql", '"Init Duration"', 24, "Init Duration: 4", 5)],
    },
    "cold_start_booking_availability": {
        "wrong": _mem("booking-availability", 4096), "revert": _mem("booking-availability", 2048),
        "fix": _pc("booking-availability", "prod", 40), "decoy": _mem("booking-reminders", 2048),
        "evidence": [_logs("booking-availability", '"Init Duration"', 24, "Init Duration: 6", 5),
                     _logs("booking-availability", "AvailabilityApplication", 24, "in 6.", 5),
                     ("list_versions", {"function_name": "booking-availability"}, '{"name": "prod", "version": "9"}')],
    },
    "cold_start_kyc_verify": {
        "wrong": _mem("kyc-verify", 5120), "revert": _mem("kyc-verify", 2560),
        "fix": _pc("kyc-verify", "live", 8), "decoy": _timeout("kyc-report", 600),
        "evidence": [_logs("kyc-verify", '"Init Duration"', 24, "Init Duration: 3", 5),
                     _config("kyc-verify", '"subnets": ["subnet-0'),
                     ("list_versions", {"function_name": "kyc-verify"}, '{"name": "live", "version": "5"}')],
    },
    # -- throttling: demand (invocations x duration) above the function's own cap --
    "throttling_email_sender": {
        "wrong": _reserve("email-sender", 10), "revert": [],
        "fix": _reserve("email-sender", 30), "decoy": _reserve("bounce-handler", 20),
        "evidence": [_config("email-sender", '"reserved_concurrency": 5'),
                     _metric("email-sender", "ConcurrentExecutions", 12, '"max": 5')],
    },
    "throttling_disabled_function": {
        "wrong": _reserve("webhook-ingest", 2), "revert": [],
        "fix": [("remove_reserved_concurrency", {"function_name": "webhook-ingest"})],
        "decoy": _reserve("webhook-replay", 5),
        "evidence": [_config("webhook-ingest", '"reserved_concurrency": 0'),
                     _logs("webhook-ingest", "processed", 168, "processed webhook")],
    },
    "throttling_media_thumbs": {
        "wrong": _reserve("media-thumbs", 40), "revert": [],
        "fix": _reserve("media-thumbs", 80), "decoy": _reserve("media-tagger", 50),
        "evidence": [_config("media-thumbs", '"reserved_concurrency": 25')],
    },
    "throttling_ledger_consumer": {
        "wrong": _reserve("ledger-consumer", 8), "revert": [],
        "fix": _reserve("ledger-consumer", 20), "decoy": _reserve("ledger-archiver", 10),
        "evidence": [_config("ledger-consumer", '"reserved_concurrency": 4'),
                     _logs("ledger-consumer", '"Rate Exceeded"', 24, "Rate Exceeded for shard", 5)],
    },
    "throttling_sms_gateway": {
        "wrong": _reserve("sms-gateway", 12), "revert": [],
        "fix": _reserve("sms-gateway", 25), "decoy": _reserve("sms-delivery-receipts", 30),
        "evidence": [_config("sms-gateway", '"reserved_concurrency": 6'),
                     _metric("sms-gateway", "ConcurrentExecutions", 6, '"max": 6'),
                     _metric("sms-gateway", "Invocations", 6, '"max": 1200')],
    },
    "throttling_audit_shipper": {
        "wrong": _reserve("audit-shipper", 5), "revert": [],
        "fix": [("remove_reserved_concurrency", {"function_name": "audit-shipper"})],
        "decoy": _reserve("audit-compactor", 10),
        "evidence": [_config("audit-shipper", '"reserved_concurrency": 2'),
                     _metric("audit-shipper", "ConcurrentExecutions", 12, '"max": 2'),
                     ("get_account_concurrency", {}, '"unreserved": 978')],
    },
    # -- cost: size memory to ~2x the observed peak; or drop idle provisioned concurrency --
    "cost_webhook_relay": {
        "wrong": _mem("webhook-relay", 128), "revert": [],
        "fix": _mem("webhook-relay", 256), "decoy": _mem("webhook-batcher", 512),
        "evidence": [_config("webhook-relay", '"memory_mb": 2048')],
    },
    "cost_idle_provisioned": {
        "wrong": _mem("report-api", 512), "revert": _mem("report-api", 1024),
        "fix": _pc("report-api", "live", 0), "decoy": _pc("report-scheduler", "live", 0),
        "evidence": [_config("report-api", '"provisioned_concurrency": {"live": 40}'),
                     _metric("report-api", "ConcurrentExecutions", 72, '"max": 3')],
    },
    "cost_tag_indexer": {
        "wrong": _mem("tag-indexer", 256), "revert": [],
        "fix": _mem("tag-indexer", 512), "decoy": _mem("tag-exporter", 512),
        "evidence": [_config("tag-indexer", '"memory_mb": 1536')],
    },
    "cost_geofence_check": {
        "wrong": _mem("geofence-check", 256), "revert": [],
        "fix": _mem("geofence-check", 512), "decoy": _mem("geofence-import", 2048),
        "evidence": [_config("geofence-check", '"memory_mb": 4096')],
    },
    "cost_feature_flags": {
        "wrong": _mem("feature-flags-api", 128), "revert": [],
        "fix": _mem("feature-flags-api", 256), "decoy": _mem("flag-audit-export", 1024),
        "evidence": [_config("feature-flags-api", '"memory_mb": 3008'),
                     _metric("feature-flags-api", "MaxMemoryUsed", 96, '"max": 111', 600)],
    },
    "cost_sandbox_warm_pool": {
        "wrong": _mem("partner-sandbox-api", 256), "revert": _mem("partner-sandbox-api", 512),
        "fix": _pc("partner-sandbox-api", "current", 0), "decoy": _pc("partner-onboarding", "live", 0),
        "evidence": [_config("partner-sandbox-api", '"provisioned_concurrency": {"current": 25}'),
                     _metric("partner-sandbox-api", "ConcurrentExecutions", 96, '"max": 2', 600),
                     _metric("partner-sandbox-api", "MaxMemoryUsed", 96, '"max": 452', 600)],
    },
    # -- errors after a deploy: roll the alias back to the last healthy version --
    "errors_profile_service": {
        "wrong": _mem("profile-api", 1024), "revert": _mem("profile-api", 512),
        "fix": _alias("profile-api", "live", 14), "decoy": _alias("profile-worker", "live", 8),
        "evidence": [_logs("profile-api", "TypeError", 24, '"v": "15"', 5)],
    },
    "errors_canary_routing": {
        "wrong": _alias("cart-api", "live", 10), "revert": [],
        "fix": _alias("cart-api", "live", 9), "decoy": _alias("cart-pricing", "live", 4),
        "evidence": [_logs("cart-api", "ValueError", 24, '"v": "10"', 5),
                     ("list_versions", {"function_name": "cart-api"}, '"routing": {"10": 0.2}')],
    },
    "errors_suggest_last_good": {
        "wrong": _alias("suggest-api", "prod", 40), "revert": [],
        "fix": _alias("suggest-api", "prod", 41), "decoy": _alias("suggest-indexer", "prod", 6),
        "evidence": [_logs("suggest-api", '"ranking.py:77"', 60, '"v": "40"', 5),
                     _logs("suggest-api", "KeyError", 6, '"v": "42"', 5)],
    },
    "errors_loyalty_points": {
        "wrong": _alias("points-ledger", "stable", 26), "revert": [],
        "fix": _alias("points-ledger", "stable", 27), "decoy": _alias("points-expiry", "stable", 11),
        "evidence": [_logs("points-ledger", "InvalidOperation", 24, '"v": "28"', 5)],
    },
    "errors_shipment_tracker": {
        "wrong": _alias("shipment-tracker", "prod", 17), "revert": [],
        "fix": _alias("shipment-tracker", "prod", 18), "decoy": _alias("shipment-notifier", "prod", 5),
        "evidence": [_logs("shipment-tracker", "TypeError", 24, '"v": "19"', 5),
                     ("list_versions", {"function_name": "shipment-tracker"}, '{"name": "prod", "version": "19"}')],
    },
    "errors_recipe_canary": {
        "wrong": _alias("recipe-api", "live", 34), "revert": [],
        "fix": _alias("recipe-api", "live", 33), "decoy": _alias("recipe-indexer", "live", 10),
        "evidence": [_logs("recipe-api", "ZeroDivisionError", 12, '"v": "34"', 5),
                     _logs("recipe-api", "rendered", 36, '"v": "33"', 5),
                     ("list_versions", {"function_name": "recipe-api"}, '"routing": {"34": 0.3}')],
    },
    # -- misleading: the symptom's obvious fix is wrong; the logs say what is --
    "misleading_memory_vs_downstream": {
        "wrong": _mem("order-history-api", 1024), "revert": _mem("order-history-api", 512),
        "fix": _timeout("order-history-api", 15), "decoy": _mem("order-export", 1024),
        "evidence": [_logs("order-history-api", "orders-db", 24, "took 8400 ms"),
                     _logs("order-history-api", '"Task timed out"', 24, "Task timed out after 5.00 seconds", 5),
                     _logs("order-history-api", '"signal: killed"', 48, '"matched": 0')],
    },
    "misleading_throttle_reserved": {
        "wrong": _reserve("analytics-batch", 50), "revert": _reserve("analytics-batch", 150),
        "fix": _reserve("notify-dispatch", 40),
        "decoy": [("remove_reserved_concurrency", {"function_name": "analytics-batch"})],
        "evidence": [("get_account_concurrency", {}, '"unreserved": 842'),
                     _config("notify-dispatch", '"reserved_concurrency": 8')],
    },
    "misleading_latency_vpc_cold": {
        "wrong": _mem("ledger-api", 2048), "revert": _mem("ledger-api", 1024),
        "fix": _pc("ledger-api", "live", 8), "decoy": _mem("ledger-reconcile", 3008),
        "evidence": [_logs("ledger-api", '"Init Duration"', 24, "Init Duration: 2", 5),
                     _metric("ledger-api", "Duration", 24, '"p99": 1')],
    },
    "misleading_deploy_not_cause": {
        "wrong": _alias("risk-scorer", "live", 11), "revert": _alias("risk-scorer", "live", 12),
        "fix": _timeout("risk-scorer", 10), "decoy": _timeout("risk-rules", 10),
        "evidence": [_logs("risk-scorer", '"Task timed out"', 12, '"v": "11"', 50),
                     _logs("risk-scorer", "fraud-score", 12, "6.9 s")],
    },
    "misleading_oom_not_timeout": {
        "wrong": _timeout("stock-sync", 300), "revert": _timeout("stock-sync", 60),
        "fix": _mem("stock-sync", 768), "decoy": _mem("stock-alerts", 768),
        "evidence": [_logs("stock-sync", '"Task timed out"', 40, '"matched": 0'),
                     _logs("stock-sync", '"signal: killed"', 24, "Runtime.ExitError", 5)],
    },
    "misleading_throttle_blamed_on_account": {
        "wrong": _reserve("settlement-engine", 100), "revert": _reserve("settlement-engine", 300),
        "fix": _reserve("fx-rates-poller", 15), "decoy": _reserve("settlement-engine", 250),
        "evidence": [("get_account_concurrency", {}, '"unreserved": 1197'),
                     _config("fx-rates-poller", '"reserved_concurrency": 3')],
    },
    "misleading_cold_start_blamed": {
        "wrong": _pc("eta-predictor", "live", 10), "revert": _pc("eta-predictor", "live", 0),
        "fix": _timeout("eta-predictor", 10), "decoy": _timeout("eta-history", 10),
        "evidence": [_logs("eta-predictor", "traffic-model", 12, "after 4700 ms"),
                     _logs("eta-predictor", '"Task timed out"', 12, "Task timed out after 3.00 seconds", 5),
                     _logs("eta-predictor", '"Init Duration"', 24, "Init Duration: 4", 5)],
    },
    # -- configuration left on the wrong qualifier: move it to what serves traffic --
    "config_pc_old_version": {
        "wrong": _pc("session-api", "live", 10), "revert": _pc("session-api", "live", 0),
        "fix": _pc("session-api", "17", 0) + _pc("session-api", "live", 10),
        "decoy": _pc("session-cleaner", "live", 0),
        "evidence": [_config("session-api", '"provisioned_concurrency": {"17": 10}'),
                     ("list_versions", {"function_name": "session-api"}, '{"name": "live", "version": "18"}')],
    },
    "config_pc_wrong_alias": {
        "wrong": _pc("quote-engine", "prod", 20), "revert": _pc("quote-engine", "prod", 0),
        "fix": _pc("quote-engine", "staging", 0) + _pc("quote-engine", "prod", 20),
        "decoy": _mem("quote-cache", 2048),
        "evidence": [_config("quote-engine", '"provisioned_concurrency": {"staging": 20}')],
    },
    "config_canary_left": {
        "wrong": _alias("pricing-rules", "live", 30), "revert": [],
        "fix": _alias("pricing-rules", "live", 31), "decoy": _alias("pricing-audit", "live", 8),
        "evidence": [("list_versions", {"function_name": "pricing-rules"}, '"routing": {"31": 0.1}'),
                     _logs("pricing-rules", '"rules=v30"', 24, '"v": "30"', 5)],
    },
    "config_blue_green_pc": {
        "wrong": _pc("checkout-gateway", "green", 12), "revert": _pc("checkout-gateway", "green", 0),
        "fix": _pc("checkout-gateway", "blue", 0) + _pc("checkout-gateway", "green", 12),
        "decoy": _mem("checkout-fraud-hook", 512),
        "evidence": [_config("checkout-gateway", '"provisioned_concurrency": {"blue": 12}')],
    },
    "config_pc_stale_after_deploy": {
        "wrong": _pc("tariff-calculator", "prod", 15), "revert": _pc("tariff-calculator", "prod", 0),
        "fix": _pc("tariff-calculator", "52", 0) + _pc("tariff-calculator", "prod", 16),
        "decoy": _timeout("tariff-loader", 900),
        "evidence": [_config("tariff-calculator", '"provisioned_concurrency": {"52": 15}'),
                     _logs("tariff-calculator", '"Init Duration"', 24, "Init Duration: 2", 5)],
    },
    "config_release_not_promoted": {
        "wrong": _alias("consent-service", "live", 42), "revert": [],
        "fix": _alias("consent-service", "live", 41), "decoy": _alias("consent-export", "live", 2),
        "evidence": [("list_versions", {"function_name": "consent-service"}, "approved by legal"),
                     ("list_versions", {"function_name": "consent-service"}, '{"name": "live", "version": "40"}'),
                     _logs("consent-service", '"banner=v40"', 24, '"v": "40"', 5)],
    },
    "config_pc_load_test_alias": {
        "wrong": _pc("seat-map-api", "prod", 20), "revert": _pc("seat-map-api", "prod", 0),
        "fix": _pc("seat-map-api", "loadtest", 0) + _pc("seat-map-api", "prod", 20),
        "decoy": _mem("seat-hold-expirer", 512),
        "evidence": [_config("seat-map-api", '"provisioned_concurrency": {"loadtest": 18}'),
                     _logs("seat-map-api", '"Init Duration"', 24, "Init Duration: 2", 5),
                     _metric("seat-map-api", "ConcurrentExecutions", 24, '"p50": 18')],
    },
    # -- questions: the number comes from the right window; nothing may change --
    "query_p99_week": {
        "wrong": _mem("orders-api", 2048), "revert": _mem("orders-api", 1024),
        "fix": [], "decoy": _mem("orders-worker", 1024),
        "evidence": [_metric("orders-api", "Duration", 168, '"p99": 2533'),
                     _metric("orders-api", "Duration", 24, '"p99": 463')],
        "answer": "The p99 duration of orders-api over the last 7 days was 2533 ms, driven by a slowdown about 4 days ago.",
        "wrong_answer": "The p99 duration of orders-api is 463 ms.",
    },
    "query_error_count": {
        "wrong": _mem("billing-api", 1024), "revert": _mem("billing-api", 512),
        "fix": [], "decoy": _timeout("billing-reports", 600),
        "evidence": [_metric("billing-api", "Errors", 72, '"sum": 3057'),
                     _metric("billing-api", "Errors", 24, '"sum": 587')],
        "answer": "billing-api had 3,057 errors over the last 3 days (72 h).",
        "wrong_answer": "billing-api had 587 errors.",
    },
    "query_timeout_count_logs": {
        "wrong": _timeout("report-gen", 60), "revert": _timeout("report-gen", 30),
        "fix": [], "decoy": _mem("report-mailer", 512),
        "evidence": [_logs("report-gen", '"Task timed out"', 240, '"matched": 44', 1),
                     _logs("report-gen", '"Task timed out"', 24, '"matched": 6', 1)],
        "answer": "report-gen timed out 44 times in the past 10 days.",
        "wrong_answer": "report-gen timed out 6 times.",
    },
    "query_peak_memory": {
        "wrong": _mem("image-tagger", 1024), "revert": _mem("image-tagger", 2048),
        "fix": [], "decoy": _mem("image-cdn-purge", 256),
        "evidence": [("get_function_metrics", {"function_name": "image-tagger", "metrics": ["MaxMemoryUsed"],
                                               "hours": 120}, '"max": 1762'),
                     ("get_function_metrics", {"function_name": "image-tagger", "metrics": ["MaxMemoryUsed"],
                                               "hours": 24}, '"max": 638')],
        "answer": "image-tagger peaked at 1762 MB in the past 5 days, about 286 MB below its 2048 MB.",
        "wrong_answer": "image-tagger peaked at 638 MB, leaving 1410 MB of headroom.",
    },
    "query_p99_fortnight": {
        "wrong": _mem("fulfilment-router", 1536), "revert": _mem("fulfilment-router", 768),
        "fix": [], "decoy": _timeout("fulfilment-sla-monitor", 60),
        "evidence": [_metric("fulfilment-router", "Duration", 288, '"p99": 1594'),
                     _metric("fulfilment-router", "Duration", 24, '"p99": 252')],
        "answer": "Over the past 12 days the p99 latency of fulfilment-router was 1594 ms.",
        "wrong_answer": "fulfilment-router's p99 latency is 252 ms.",
    },
    "query_declined_count": {
        "wrong": _timeout("payment-authorizer", 30), "revert": _timeout("payment-authorizer", 10),
        "fix": [], "decoy": _mem("payment-refunds", 2048),
        "evidence": [_logs("payment-authorizer", "CardDeclined", 144, '"matched": 394', 1),
                     _logs("payment-authorizer", "CardDeclined", 24, '"matched": 59', 1)],
        "answer": "payment-authorizer logged 394 card-declined events in the last six days.",
        "wrong_answer": "payment-authorizer logged 59 card-declined events.",
    },
    "query_throttle_count": {
        "wrong": _reserve("batch-enricher", 40), "revert": _reserve("batch-enricher", 20),
        "fix": [], "decoy": _mem("batch-dispatcher", 1024),
        "evidence": [_metric("batch-enricher", "Throttles", 96, '"sum": 2482'),
                     _metric("batch-enricher", "Throttles", 96, '"sum": 2482', 3600),
                     _metric("batch-enricher", "Throttles", 24, '"sum": 143')],
        "answer": "AWS throttled 2,482 batch-enricher invocations over the past 4 days (96 h), most in a burst ~70 h ago.",
        "wrong_answer": "batch-enricher had 143 throttled invocations.",
    },
}


def scenario(name: str) -> Scenario:
    return load_scenario(SCENARIOS_DIR / f"{name}.yaml")


def expect_matches(expect: dict[str, Any], answer: str) -> bool:
    """A scenario's ``expect`` (contains/regex, case-insensitive) against a final answer.

    The evaluation module owns the real validation; this is the minimal reading
    the scenario files are written for, to prove their expectations are right.
    """
    import re

    low = answer.lower()
    if any(str(c).lower() not in low for c in expect.get("contains", [])):
        return False
    return all(re.search(str(r), answer, re.IGNORECASE) for r in expect.get("regex", []))


def assert_original_evidence(name: str, spec: Scenario, box: Toolbox) -> None:
    """The data a careful operator needs is really in the account (not just in the YAML)."""
    fn = spec.checks[0].conditions()[0].function
    assert fn is not None
    metrics = box.ok("get_function_metrics", function_name=fn, hours=int(spec.hours),
                     metrics=["Duration", "Errors", "Invocations", "Throttles", "MaxMemoryUsed"])["metrics"]
    if name == "lambda_timeout":
        cfg = box.ok("get_function_configuration", function_name=fn)
        assert metrics["Duration"]["p99"] >= cfg["timeout_s"] * 1000 * 0.95
        assert metrics["MaxMemoryUsed"]["max"] < cfg["memory_mb"] / 4
        assert box.ok("search_logs", function_name=fn, pattern='"Task timed out"', hours=48)["matched"] > 10
        slow = box.ok("search_logs", function_name=fn, pattern="inventory-service", hours=48, limit=50)
        assert any("7.6 s" in e["msg"] for e in slow["events"])
    elif name == "lambda_memory":
        assert metrics["MaxMemoryUsed"]["max"] == 256
        killed = box.ok("search_logs", function_name=fn, pattern='"signal: killed"', hours=48)
        assert killed["matched"] > 10
    elif name == "lambda_cold_start":
        inits = box.ok("search_logs", function_name=fn, pattern='"Init Duration"', hours=48, limit=5)
        assert inits["matched"] > 50
        assert all("Init Duration: 2" in e["msg"] or "Init Duration: 3" in e["msg"] for e in inits["events"])
        assert box.ok("get_function_configuration", function_name=fn)["vpc"]["subnets"]
        assert box.ok("list_versions", function_name=fn)["aliases"] == [{"name": "live", "version": "12"}]
    elif name == "lambda_throttling":
        assert metrics["Throttles"]["max"] > 1000
        assert box.ok("get_function_configuration", function_name=fn)["reserved_concurrency"] == 10
        acct = box.ok("get_account_concurrency")
        assert acct == {"limit": 1000, "unreserved": 690, "note": acct["note"]}
    elif name == "lambda_cost":
        assert metrics["MaxMemoryUsed"]["max"] < 150
        assert metrics["Duration"]["p99"] < 150
    elif name == "lambda_errors":
        versions = box.ok("list_versions", function_name=fn)
        assert [v["version"] for v in versions["versions"]] == ["7", "6", "5", "4", "3", "2", "1"]
        assert versions["versions"][0]["description"].startswith("release 7")
        errors = box.ok("search_logs", function_name=fn, pattern="KeyError", hours=48, limit=50)
        assert errors["matched"] >= 60 and {e["v"] for e in errors["events"]} == {"7"}
        assert metrics["Errors"]["max"] > 15 and metrics["Errors"]["p50"] < 5


class Toolbox:
    """The tools of one account, invoked the way the agent loop invokes them (tool calls)."""

    def __init__(self, account: SimulatedAccount) -> None:
        self.account = account
        self.tools = {t.name: t for t in build_tools(account.clients)}
        self._n = 0

    def call(self, name: str, **args: Any) -> ToolMessage:
        self._n += 1
        msg = self.tools[name].invoke({"name": name, "args": args, "id": f"call-{self._n}", "type": "tool_call"})
        assert isinstance(msg, ToolMessage)
        return msg

    def ok(self, name: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must succeed; its JSON result as a dict."""
        import json

        msg = self.call(name, **args)
        assert msg.status == "success", msg.content
        return json.loads(msg.content)

    def run(self, steps: list[Step]) -> None:
        for name, args in steps:
            self.ok(name, **args)


@contextmanager
def simulated(spec: Scenario | None, **kwargs: Any) -> Iterator[tuple[SimulatedAccount, Toolbox]]:
    with SimulatedAccount(spec, **kwargs) as account:
        yield account, Toolbox(account)
