"""lambda_ops: a selfheal agent operating AWS Lambda through boto3, on a simulated (moto) or real account.

Written on selfheal's public API only (``selfheal``, ``selfheal.errors``, ``selfheal.yamlio``).
"""
