"""Planted secrets and look-alikes in realistic trace payloads, for the redaction tests.

Every secret here is fake (AWS's documented EXAMPLE keys, made-up tokens of the
right shape). ``PLANTED`` items must lose every listed secret and show the
expected placeholder kind; ``LOOKALIKES`` must keep every listed survivor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Values reused in several payloads (each is checked wherever it appears).
AKID = "AKIAIOSFODNN7EXAMPLE"
AKID_2 = "AKIAI44QH8DHBEXAMPLE"
ASIA = "ASIAY34FZKBOKMUTVV7A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_SECRET_2 = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
AWS_SECRET_3 = "Xq2v8Rk3Lm9Pz4Tb7Wc1Ny6Hd5Jf0Gs3Ae8Uo2Ki"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1c2VyLTEyMyIsImV4cCI6MTczMDQxOTIwMH0."
    "c2lnbmF0dXJlLXBhcnQtMTIzNDU2Nzg5MGFiY2RlZg"
)
OPENAI_PROJ = "sk-proj-Zx81KqT0mW3vB6nY9cE2aR5uL8oI1pS4dF7gH0jK3lM6_nB9vC2xZ5-qW8eR1tY4"
OPENAI_LEGACY = "sk-4fQ9zT2mX7pL1nV8bR3kW6yH0cJ5dG2sA9eU"
ANTHROPIC = "sk-ant-api03-Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3Vb5Nm7Qw9Er1Ty3Ui5Op7As-AbCdEfAA"
LS_PT = "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"
LS_SK = "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"
GHP = "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngXyZ123456"
GH_PAT = "github_pat_11ABCDEFG0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVw"
GHO = "gho_16C7e42F292c6912E7710c838347Ae178B4a"
SLACK_BOT = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_USER = "xoxp-2345678901-2345678901234-3456789012345-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
PEM_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7xQ2k9Zb1cDqJm3Lr8FtYvW0pXnGhE5sUiKo4aTyBz6NdVwC\n"
    "q1Lm3Nb5Vc7Xz9Aa2Sd4Fg6Hj8Kl0Qw1Er3Ty5Ui7Op9AsDfGhJkLzXcVbNmQwErT\n"
    "-----END RSA PRIVATE KEY-----"
)
PEM_BODY_LINE = "MIIEowIBAAKCAQEA7xQ2k9Zb1cDqJm3Lr8FtYvW0pXnGhE5sUiKo4aTyBz6NdVwC"
SSH_BODY_LINE = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"


@dataclass(frozen=True)
class Planted:
    """A payload hiding ``secrets``; after redaction none may remain and ``kinds`` must show."""

    label: str
    payload: Any
    secrets: tuple[str, ...]
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class LookAlike:
    """A payload whose ``survivors`` must all still be there after redaction."""

    label: str
    payload: Any
    survivors: tuple[str, ...]


def _tool_output(tool: str, output: Any) -> dict[str, Any]:
    """A tool run as the tracer records it."""
    return {
        "name": tool,
        "run_type": "tool",
        "inputs": {"input": json.dumps({"function_name": "resize-images"})},
        "outputs": {"output": output},
        "extra": {
            "metadata": {
                "task_type": "lambda_timeout",
                "session_id": "c919298b-0af2-4517-97a2-0f98ed4a48f8",
            }
        },
        "tags": ["prod", "lambda_ops"],
    }


def _ai_tool_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """A LangChain AIMessage dict whose tool call carries arguments as a JSON string."""
    return {
        "type": "ai",
        "content": "",
        "additional_kwargs": {
            "tool_calls": [
                {
                    "id": "call_7Qw2",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ]
        },
        "response_metadata": {
            "token_usage": {"prompt_tokens": 812, "completion_tokens": 41, "total_tokens": 853}
        },
    }


def _human(text: str) -> dict[str, Any]:
    return {"type": "human", "content": text, "additional_kwargs": {}, "id": None}


def _log_events(*messages: str) -> dict[str, Any]:
    """A CloudWatch ``filter_log_events`` tool output."""
    return {
        "events": [
            {
                "logStreamName": "2026/11/01/[$LATEST]0123456789abcdef0123456789abcdef",
                "timestamp": 1730419200000 + i,
                "message": m,
            }
            for i, m in enumerate(messages)
        ]
    }


PLANTED: list[Planted] = [
    # -- emails
    Planted(
        "email in a log line",
        _log_events("2026-11-01T12:00:03.120Z INFO sending report to oncall.lead@acme-corp.com"),
        ("oncall.lead@acme-corp.com",),
        ("email",),
    ),
    Planted(
        "email in an env var",
        _tool_output(
            "get_function_configuration",
            {"Environment": {"Variables": {"ALERT_EMAIL": "jane.doe+alerts@example.org"}}},
        ),
        ("jane.doe+alerts@example.org",),
        ("email",),
    ),
    Planted(
        "email in a human message",
        {
            "messages": [
                _human("My email is bob_smith@mail.example.co.uk, why does my lambda time out?")
            ]
        },
        ("bob_smith@mail.example.co.uk",),
        ("email",),
    ),
    # -- AWS keys
    Planted(
        "access key id in an env dump",
        _tool_output("shell", f"HOME=/root\nAWS_ACCESS_KEY_ID={AKID}\nAWS_REGION=us-east-1"),
        (AKID,),
        ("aws_access_key_id",),
    ),
    Planted(
        "ASIA key id in an error",
        {
            "error": "botocore.exceptions.ClientError: An error occurred (InvalidClientTokenId)"
            " when calling the GetCallerIdentity operation: The security token included in the"
            f" request is invalid. Key: {ASIA}"
        },
        (ASIA,),
        ("aws_access_key_id",),
    ),
    Planted(
        "STS credentials dict",
        _tool_output(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": ASIA,
                    "SecretAccessKey": AWS_SECRET,
                    "SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD",
                    "Expiration": "2026-11-01T13:00:00Z",
                }
            },
        ),
        (ASIA, AWS_SECRET, "IQoJb3JpZ2luX2VjEJr"),
        ("aws_access_key_id", "aws_secret_access_key", "secret"),
    ),
    Planted(
        "credentials file",
        _tool_output(
            "read_file",
            f"[default]\naws_access_key_id = {AKID_2}\naws_secret_access_key = {AWS_SECRET_2}\nregion = eu-west-1\n",
        ),
        (AKID_2, AWS_SECRET_2),
        ("aws_access_key_id", "aws_secret_access_key"),
    ),
    Planted(
        "key pair in a CSV",
        {
            "output": f"User name,Access key ID,Secret access key\ndeploy-bot,{AKID_2},{AWS_SECRET_3}\n"
        },
        (AKID_2, AWS_SECRET_3),
        ("aws_access_key_id", "aws_secret_access_key"),
    ),
    Planted(
        "secret key in prose",
        _human(f"our aws secret key is {AWS_SECRET_3} can you check it?"),
        (AWS_SECRET_3,),
        ("aws_secret_access_key",),
    ),
    Planted(
        "bare secret key in a log line",
        _log_events(f"rotated credentials: new {AKID} pair, secret {AWS_SECRET_3[::-1]} stored"),
        (AKID, AWS_SECRET_3[::-1]),
        ("aws_access_key_id", "aws_secret_access_key"),
    ),
    Planted(
        "bare secret key in a diff",
        {"output": f"--- a/env\n+++ b/env\n+{AWS_SECRET}\n"},
        (AWS_SECRET,),
        ("aws_secret_access_key",),
    ),
    Planted(
        "Stripe and Google keys",
        {"output": "STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc maps AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"},
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
        ("stripe_api_key", "google_api_key"),
    ),
    Planted(
        "secret key as JSON in a tool call",
        {"messages": [_ai_tool_call("update_env", {"aws_secret_access_key": AWS_SECRET})]},
        (AWS_SECRET,),
        ("aws_secret_access_key",),
    ),
    # -- bearer / basic / JWT
    Planted(
        "bearer JWT in an HTTP log",
        _log_events(
            f"GET /v1/orders HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer {JWT}\r\n"
        ),
        (JWT,),
        ("bearer_token",),
    ),
    Planted(
        "authorization header dict",
        {
            "request": {
                "method": "POST",
                "headers": {
                    "Authorization": "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
                    "Content-Type": "application/json",
                },
            }
        },
        ("9f8e7d6c5b4a39281706f5e4d3c2b1a0",),
        ("secret",),
    ),
    Planted(
        "curl with lower-case header",
        _tool_output(
            "shell",
            'curl -s -H "authorization: bearer abc123def456ghi789" https://api.example.com/health',
        ),
        ("abc123def456ghi789",),
        ("bearer_token",),
    ),
    Planted(
        "bare bearer token",
        {"error": "401 Unauthorized while retrying with Bearer Zm9vYmFyYmF6cXV4MTIz; giving up"},
        ("Zm9vYmFyYmF6cXV4MTIz",),
        ("bearer_token",),
    ),
    Planted(
        "basic auth header",
        _log_events('POST /admin HTTP/1.1 "Authorization: Basic YWRtaW46aHVudGVyMg=="'),
        ("YWRtaW46aHVudGVyMg==",),
        ("basic_auth",),
    ),
    Planted(
        "id_token assignment", {"output": f"login ok: id_token={JWT}&state=xyz"}, (JWT,), ("jwt",)
    ),
    Planted(
        "standalone JWT",
        _tool_output("get_session", f"session cookie value {JWT} expires in 3600s"),
        (JWT,),
        ("jwt",),
    ),
    # -- vendor API keys
    Planted(
        "OpenAI project key in env",
        _tool_output(
            "shell", f"OPENAI_API_KEY={OPENAI_PROJ}\nOPENAI_BASE_URL=http://127.0.0.1:8000/v1"
        ),
        (OPENAI_PROJ,),
        ("openai_api_key",),
    ),
    Planted(
        "OpenAI key in an error",
        {
            "error": "openai.AuthenticationError: Error code: 401 - {'error': {'message':"
            f" 'Incorrect API key provided: {OPENAI_LEGACY}.', 'type': 'invalid_request_error'}}}}"
        },
        (OPENAI_LEGACY,),
        ("openai_api_key",),
    ),
    Planted(
        "Anthropic key in config",
        {"model": {"provider": "anthropic", "api_key": ANTHROPIC}},
        (ANTHROPIC,),
        ("anthropic_api_key",),
    ),
    Planted(
        "LangSmith personal token in env",
        _tool_output("shell", f"export LANGSMITH_TRACING=true\nexport LANGSMITH_API_KEY={LS_PT}"),
        (LS_PT,),
        ("langsmith_api_key",),
    ),
    Planted(
        "LangSmith service key in headers",
        {"headers": {"x-api-key": LS_SK, "accept": "application/json"}},
        (LS_SK,),
        ("langsmith_api_key",),
    ),
    Planted(
        "GitHub token in a remote URL",
        _tool_output("shell", f"origin\thttps://{GHP}@github.com/acme/infra.git (fetch)"),
        (GHP,),
        ("github_token",),
    ),
    Planted(
        "fine-grained GitHub PAT",
        _log_events(f"[deploy] using token {GH_PAT} for acme/infra"),
        (GH_PAT,),
        ("github_token",),
    ),
    Planted(
        "GitHub OAuth token",
        {"messages": [_human(f"I pasted {GHO} by mistake")]},
        (GHO,),
        ("github_token",),
    ),
    Planted(
        "Slack bot token",
        _tool_output("read_file", f"slack:\n  bot: {SLACK_BOT}\n  channel: '#oncall'\n"),
        (SLACK_BOT,),
        ("slack_token",),
    ),
    Planted(
        "Slack user token in an AI message",
        {"type": "ai", "content": f"I found the Slack token {SLACK_USER} in the logs."},
        (SLACK_USER,),
        ("slack_token",),
    ),
    # -- generic keys and passwords
    Planted(
        "api_key in a query string",
        _log_events(
            "GET https://api.weather.example/v1/forecast?q=Paris&api_key=3f9a7c2e1b8d4f6a0c5e&units=metric 200"
        ),
        ("3f9a7c2e1b8d4f6a0c5e",),
        ("api_key",),
    ),
    Planted(
        "X-API-Key header line",
        {"output": "X-API-Key: 7c1e9d3b5a2f4e6c8b0d\nUser-Agent: boto3"},
        ("7c1e9d3b5a2f4e6c8b0d",),
        ("api_key",),
    ),
    Planted(
        "apiKey inside tool-call JSON",
        {
            "messages": [
                _ai_tool_call(
                    "call_maps", {"apiKey": "AIzaSyD-EXAMPLE-1234567890abcdef", "city": "Lyon"}
                )
            ]
        },
        ("AIzaSyD-EXAMPLE-1234567890abcdef",),
        ("api_key",),
    ),
    Planted(
        "password with spaces in tool-call JSON",
        {
            "messages": [
                _ai_tool_call(
                    "connect_db", {"host": "db", "password": "correct horse battery staple"}
                )
            ]
        },
        ("correct horse battery staple",),
        ("secret",),
    ),
    Planted(
        "password in a database URL",
        _tool_output(
            "get_function_configuration",
            {
                "Environment": {
                    "Variables": {
                        "DATABASE_URL": "postgres://app_user:Sup3rS3cret!@db.internal.example:5432/orders"
                    }
                }
            },
        ),
        ("Sup3rS3cret!",),
        ("password",),
    ),
    Planted(
        "PGPASSWORD in env",
        _tool_output("shell", "PGHOST=db\nPGPASSWORD=hunter2hunter2\nPGUSER=app"),
        ("hunter2hunter2",),
        ("secret",),
    ),
    Planted(
        "db_password dict value",
        {"config": {"db_user": "app", "db_password": "Tr0ub4dor&3"}},
        ("Tr0ub4dor&3",),
        ("secret",),
    ),
    Planted(
        "client_secret in YAML",
        _tool_output(
            "read_file",
            "oauth:\n  client_id: my-app\n  client_secret: 8Q~dXzfakeClientSecretValue_123\n",
        ),
        ("8Q~dXzfakeClientSecretValue_123",),
        ("secret",),
    ),
    Planted(
        "presigned URL signature",
        {
            "output": "https://bucket.s3.amazonaws.com/report.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Signature=4f2a9c7e1b3d5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4"
            "&X-Amz-Expires=300"
        },
        ("4f2a9c7e1b3d5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4",),
        ("secret",),
    ),
    Planted(
        "camelCase refreshToken in text",
        {"output": 'saved {"refreshToken":"rt_9a8b7c6d5e4f3a2b1c0d"} to cache'},
        ("rt_9a8b7c6d5e4f3a2b1c0d",),
        ("secret",),
    ),
    # -- private keys
    Planted(
        "PEM block in a tool output",
        _tool_output("read_file", f"# deploy key\n{PEM_RSA}\n# end"),
        (PEM_BODY_LINE, "BEGIN RSA PRIVATE KEY"),
        ("private_key",),
    ),
    Planted(
        "truncated OpenSSH key in a log",
        _log_events(
            f"cat id_ed25519: -----BEGIN OPENSSH PRIVATE KEY-----\\n{SSH_BODY_LINE}\\nQyNTUxOQAAACD..."
        ),
        (SSH_BODY_LINE,),
        ("private_key",),
    ),
    # -- IP addresses
    Planted(
        "IPv4 in a connection error",
        {
            "error": 'psycopg.OperationalError: connection to server at "10.20.30.40", port 5432 failed: timeout'
        },
        ("10.20.30.40",),
        ("ipv4",),
    ),
    Planted(
        "private IP in a VPC config",
        _tool_output(
            "get_function_configuration",
            {"VpcConfig": {"SubnetIds": ["subnet-0a1b2c3d"], "PrivateIpAddress": "172.31.5.99"}},
        ),
        ("172.31.5.99",),
        ("ipv4",),
    ),
    Planted(
        "X-Forwarded-For chain",
        _log_events("X-Forwarded-For: 203.0.113.195, 198.51.100.7"),
        ("203.0.113.195", "198.51.100.7"),
        ("ipv4",),
    ),
    Planted(
        "IPv6 in a log",
        _log_events("upstream 2001:db8:85a3::8a2e:370:7334 reset the connection"),
        ("2001:db8:85a3::8a2e:370:7334",),
        ("ipv6",),
    ),
    Planted(
        "link-local IPv6 with zone",
        {"output": "ping fe80::1ff:fe23:4567:890a%eth0: 64 bytes"},
        ("fe80::1ff:fe23:4567:890a",),
        ("ipv6",),
    ),
    # -- AWS account ids
    Planted(
        "account in ARNs of an AccessDenied error",
        {
            "error": "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ops/agent"
            " is not authorized to perform: lambda:GetFunction on resource:"
            " arn:aws:lambda:us-east-1:123456789012:function:resize-images"
        },
        ("123456789012",),
        ("aws_account_id",),
    ),
    Planted(
        "get-caller-identity output",
        _tool_output(
            "get_caller_identity",
            {
                "UserId": "AIDAJQABLZS4A3QDU576Q",
                "Account": "210987654321",
                "Arn": "arn:aws:iam::210987654321:user/dev",
            },
        ),
        ("210987654321",),
        ("aws_account_id",),
    ),
    Planted(
        "account id in prose",
        _human("the AWS account id: 345678901234 is the prod one"),
        ("345678901234",),
        ("aws_account_id",),
    ),
    Planted(
        "account in an SQS URL",
        _tool_output(
            "get_event_source_mappings",
            {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/456789012345/orders-dlq"},
        ),
        ("456789012345",),
        ("aws_account_id",),
    ),
    Planted(
        "account in an ECR image",
        {"output": "ImageUri: 567890123456.dkr.ecr.us-east-1.amazonaws.com/resize:latest"},
        ("567890123456",),
        ("aws_account_id",),
    ),
    Planted(
        "numeric AccountId",
        {"Owner": {"AccountId": 678901234567}},
        ("678901234567",),
        ("aws_account_id",),
    ),
]

REPORT_LINE = (
    "REPORT RequestId: 8f5c2b1e-3c4d-4e5f-9a0b-1c2d3e4f5a6b\tDuration: 2950.12 ms\tBilled Duration: 3000 ms\t"
    "Memory Size: 128 MB\tMax Memory Used: 87 MB\tInit Duration: 245.67 ms"
)

LOOKALIKES: list[LookAlike] = [
    LookAlike(
        "git SHA in text",
        {"output": "commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: CI"},
        ("3f786850e387550fdab836ed7e6dc881de23001b",),
    ),
    LookAlike(
        "git SHA in a dict",
        {"git_sha": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "short": "a94a8fe"},
        ("a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "a94a8fe"),
    ),
    LookAlike(
        "git SHA next to a secret-ish word",
        {"output": "rotated secret in 9c1185a5c5e9fc54612808977ee8f548b2258d31"},
        ("9c1185a5c5e9fc54612808977ee8f548b2258d31",),
    ),
    LookAlike(
        "40-character hashes, ids and paths",
        {
            "output": "sha1 3F786850E387550FDAB836ED7E6DC881DE23001B; dir src/app/Handler2024/Config/MainModule/v1x;"
            " ref refs/heads/feat/secrets-and-more-things; name abcdefghijklmnopqrstuvwxyzabcdefghijklmn"
        },
        (
            "3F786850E387550FDAB836ED7E6DC881DE23001B",
            "src/app/Handler2024/Config/MainModule/v1x",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
        ),
    ),
    LookAlike(
        "request id uuid",
        _log_events("START RequestId: 8f5c2b1e-3c4d-4e5f-9a0b-1c2d3e4f5a6b Version: $LATEST"),
        ("8f5c2b1e-3c4d-4e5f-9a0b-1c2d3e4f5a6b", "$LATEST"),
    ),
    LookAlike("Lambda REPORT line", _log_events(REPORT_LINE), (REPORT_LINE,)),
    LookAlike(
        "version strings",
        {
            "output": "Python 3.11.7, boto3 1.34.162, langchain-core 1.8.0, runtime python3.11 / nodejs20.x"
        },
        ("3.11.7", "1.34.162", "1.8.0", "python3.11", "nodejs20.x"),
    ),
    LookAlike(
        "function ARN parts",
        {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:resize-images:$LATEST"},
        ("arn:aws:lambda:us-east-1:", ":function:resize-images:$LATEST"),
    ),
    LookAlike(
        "ARNs without an account",
        {
            "output": "arn:aws:s3:::my-bucket/reports/2026 and arn:aws:iam::aws:policy/AWSLambdaBasicExecutionRole"
        },
        (
            "arn:aws:s3:::my-bucket/reports/2026",
            "arn:aws:iam::aws:policy/AWSLambdaBasicExecutionRole",
        ),
    ),
    LookAlike(
        "timestamps",
        _log_events("2026-11-01T12:34:56.789Z 12:34:56 started at 1730419200000 (epoch ms)"),
        ("2026-11-01T12:34:56.789Z", "12:34:56", "1730419200000"),
    ),
    LookAlike(
        "memory sizes and timeouts",
        {
            "MemorySize": 1024,
            "Timeout": 900,
            "EphemeralStorage": {"Size": 512},
            "output": "Memory Size: 1024 MB, timeout 900 s",
        },
        ("1024", "900", "512", "Memory Size: 1024 MB"),
    ),
    LookAlike(
        "token counts",
        {
            "token_usage": {"prompt_tokens": 512, "completion_tokens": 128, "total_tokens": 640},
            "max_tokens": 512,
            "usage_metadata": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        },
        ('"prompt_tokens": 512', '"total_tokens": 640', '"max_tokens": 512', '"input_tokens": 10'),
    ),
    LookAlike(
        "token counts in text",
        {"output": "max_tokens=512 total_tokens: 1200 token_count=4 tokens=99"},
        ("max_tokens=512 total_tokens: 1200 token_count=4 tokens=99",),
    ),
    LookAlike(
        "prose about credentials",
        _human(
            "Use a bearer token in the Authorization header; never log the password or the api key."
        ),
        ("Use a bearer token in the Authorization header; never log the password or the api key.",),
    ),
    LookAlike(
        "loopback and unspecified addresses",
        {"output": "listening on 127.0.0.1:8080, 0.0.0.0:8000 and [::1]:5000; localhost"},
        ("127.0.0.1:8080", "0.0.0.0:8000", "[::1]:5000"),
    ),
    LookAlike(
        "MAC address and slices",
        {"output": "eth0 ether 00:1a:2b:3c:4d:5e; x[::2] and s[::-1]; std::vector<int>"},
        ("00:1a:2b:3c:4d:5e", "x[::2]", "s[::-1]", "std::vector<int>"),
    ),
    LookAlike(
        "hashes of code",
        {
            "CodeSha256": "jNcM5ZHXgIQ5N3uFUpS3IVe2LBxiFuNS7MrJT+Xb2Xk=",
            "ETag": "d41d8cd98f00b204e9800998ecf8427e",
            "digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b4c8e08d1a2d0f5e5b2d3c4e1",
        },
        (
            "jNcM5ZHXgIQ5N3uFUpS3IVe2LBxiFuNS7MrJT+Xb2Xk=",
            "d41d8cd98f00b204e9800998ecf8427e",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b4c8e08d1a2d0f5e5b2d3c4e1",
        ),
    ),
    LookAlike(
        "secret names are not secrets",
        {
            "SecretId": "prod/db/credentials",
            "secret_name": "prod/api",
            "SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
            "password_last_used": "2026-10-30",
        },
        ("prod/db/credentials", "prod/api", ":secret:db-AbCdEf", "2026-10-30"),
    ),
    LookAlike(
        "LangSmith metadata",
        {
            "extra": {
                "metadata": {
                    "session_id": "c919298b-0af2-4517-97a2-0f98ed4a48f8",
                    "thread_id": "t-42",
                    "ls_model_name": "gpt-4o-mini",
                }
            }
        },
        ("c919298b-0af2-4517-97a2-0f98ed4a48f8", "t-42", "gpt-4o-mini"),
    ),
    LookAlike(
        "feedback records",
        {"feedback": [{"key": "correctness", "score": 1.0, "comment": "fixed the timeout"}]},
        ('"key": "correctness"', '"score": 1.0'),
    ),
    LookAlike(
        "log stream names",
        _log_events("stream 2026/11/01/[$LATEST]0123456789abcdef0123456789abcdef"),
        ("2026/11/01/[$LATEST]0123456789abcdef0123456789abcdef",),
    ),
    LookAlike(
        "dotted numbers that are not IPv4",
        {"output": "values 999.1.1.1, 10.0.0 and 256.300.1.2, ratio 1.5.2"},
        ("999.1.1.1", "10.0.0 ", "256.300.1.2", "1.5.2"),
    ),
    LookAlike(
        "ssh remotes and package pins",
        {"output": "git@github.com:acme/infra.git, pkg@1.2.3, user@localhost"},
        ("git@github.com:acme/infra.git", "pkg@1.2.3", "user@localhost"),
    ),
    LookAlike(
        "names that contain sk- and ghp",
        {"output": "scikit-learn (sk-learn) task-runner ghp_short xoxb-1"},
        ("sk-learn", "task-runner", "ghp_short", "xoxb-1"),
    ),
    LookAlike(
        "twelve digits without an account context",
        {"output": "order 123456789012 shipped; invoice 987654321098"},
        ("123456789012", "987654321098"),
    ),
    LookAlike(
        "keys that describe secrets",
        {
            "auth_type": "iam",
            "token_usage": {"total": 3},
            "api_key_required": True,
            "password": None,
            "secret": "",
        },
        (
            '"auth_type": "iam"',
            '"total": 3',
            '"api_key_required": true',
            '"password": null',
            '"secret": ""',
        ),
    ),
]


# -- the planted-secrets corpus of whole-command tests -----------------------------
#
# ``CORPUS``: deterministic fake secrets of every kind a team's agent meets, each with
# the text it is planted as (with its usual prefix, e.g. ``aws_secret_access_key=``,
# or bare). A test plants the ``text`` somewhere (task, scenario data, feedback, env,
# model output) and then greps for the ``value``: it must be nowhere. ``KINDS`` lists
# the kinds; ``len(CORPUS)`` is the number a reliability table reports.


@dataclass(frozen=True)
class Secret:
    """One planted secret: ``value`` must never be found; ``text`` is how it is planted."""

    kind: str
    value: str
    text: str


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _pick(rng: Any, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: Any, n: int, extra: str = "") -> str:
    """n random characters with upper, lower and digits (so it reads as a random key)."""
    while True:
        s = _pick(rng, _B64 + extra, n)
        if any(c.isupper() for c in s) and any(c.islower() for c in s) and sum(c.isdigit() for c in s) >= 2:
            return s


def _b64url(rng: Any, n: int) -> str:
    return _mixed(rng, n, "-_")


def _corpus(per_kind: int = 4, seed: int = 1414) -> tuple[Secret, ...]:
    import random

    rng = random.Random(seed)
    upper_digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    out: list[Secret] = []
    for i in range(per_kind):
        akid = ("AKIA" if i % 2 == 0 else "ASIA") + _pick(rng, upper_digits, 16)
        sak = _mixed(rng, 40, "/+")
        bare = _mixed(rng, 40)
        oai = "sk-" + _mixed(rng, 48)
        proj = "sk-proj-" + _b64url(rng, 64)
        ant = "sk-ant-api03-" + _b64url(rng, 86) + "AA"
        ghp = "ghp_" + _mixed(rng, 36)
        pat = "github_pat_11" + _pick(rng, upper_digits, 20) + "_" + _mixed(rng, 59)
        slack = f"xox{'bpas'[i % 4]}-" + _pick(rng, "0123456789", 12) + "-" + _pick(rng, "0123456789", 13) + "-" + _mixed(rng, 24)
        stripe = ("sk_live_" if i % 2 == 0 else "rk_live_") + _mixed(rng, 24)
        google = "AIza" + _b64url(rng, 35)
        jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ" + _b64url(rng, 40) + "." + _b64url(rng, 43)
        bearer = _mixed(rng, 32)
        pem_line = _mixed(rng, 64, "+/")
        pem_kind = ("RSA ", "EC ", "OPENSSH ", "")[i % 4]
        pem = f"-----BEGIN {pem_kind}PRIVATE KEY-----\n{pem_line}\n{_mixed(rng, 64, '+/')}\n-----END {pem_kind}PRIVATE KEY-----"
        url_pw = _mixed(rng, 14) + "!x"
        user = _pick(rng, "abcdefghijklmnopqrstuvwxyz", 7)
        email = f"{user}.{_pick(rng, 'abcdefghijklmnopqrstuvwxyz', 5)}{i}@corp-{user[:3]}.example.com"
        pw = _mixed(rng, 18) + "#7"
        api = _pick(rng, "0123456789abcdef", 32)
        scheme = ("postgres", "mysql", "redis", "https")[i % 4]
        out += [
            Secret("aws_access_key_id", akid, akid),
            Secret("aws_secret_key_prefixed", sak, f"aws_secret_access_key={sak}"),
            Secret("aws_secret_key_bare", bare, bare),
            Secret("openai_api_key", oai, oai),
            Secret("openai_project_key", proj, proj),
            Secret("anthropic_api_key", ant, ant),
            Secret("github_token", ghp, ghp),
            Secret("github_fine_grained_pat", pat, pat),
            Secret("slack_token", slack, slack),
            Secret("stripe_api_key", stripe, stripe),
            Secret("google_api_key", google, google),
            Secret("jwt", jwt, jwt),
            Secret("bearer_token", bearer, f"Authorization: Bearer {bearer}"),
            Secret("private_key_pem", pem_line, pem),
            Secret("url_password", url_pw, f"{scheme}://{user}:{url_pw}@db{i}.internal.example:5432/app"),
            Secret("email", email, email),
            Secret("password_assignment", pw, f"password={pw}"),
            Secret("api_key_assignment", api, f"api_key={api}"),
        ]
    return tuple(out)


#: Every planted secret of the whole-command tests (72: 18 kinds x 4).
CORPUS: tuple[Secret, ...] = _corpus()
#: The kinds in ``CORPUS``, in order.
KINDS: tuple[str, ...] = tuple(dict.fromkeys(s.kind for s in CORPUS))
