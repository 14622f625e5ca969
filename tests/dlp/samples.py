"""Synthetic samples for the DLP tests: right shape, random content, never real secrets.

Every value is generated from a seeded RNG, so the corpora are the same on
every run and every machine; the checks that make a value "valid" (Luhn,
mod-97, checksums) are computed here, not copied from anywhere.
"""

from __future__ import annotations

import base64
import json
import random
import string

from llm_gateway.dlp.checksums import keccak256

RNG = random.Random(20240601)
ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
DIGITS = string.digits


def rand(alphabet: str, size: int) -> str:
    """``size`` characters of ``alphabet``, with at least one letter and one digit when possible."""
    while True:
        value = "".join(RNG.choice(alphabet) for _ in range(size))
        wants_mix = any(c.isdigit() for c in alphabet) and any(c.isalpha() for c in alphabet)
        if not wants_mix or size < 8:
            return value
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def uuid() -> str:
    return "-".join(rand(HEX, n) for n in (8, 4, 4, 4, 12))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt() -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": rand(DIGITS, 10), "name": "Test"}).encode())
    return f"{header}.{payload}.{rand(URLSAFE, 43)}"


def pem_body(lines: int = 4) -> str:
    return "\n".join(rand(B64, 64) for _ in range(lines))


def fullwidth(text: str) -> str:
    """``text`` with its ASCII letters and digits in fullwidth forms (U+FF10...)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def arabic_indic(text: str) -> str:
    """``text`` with its ASCII digits as Arabic-Indic digits (U+0660...)."""
    return "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in text)


def luhn_complete(prefix: str, length: int) -> str:
    """A number of ``length`` digits starting with ``prefix`` whose Luhn digit is right."""
    body = prefix + rand(DIGITS, length - len(prefix) - 1)
    for check in DIGITS:
        candidate = body + check
        total = 0
        for i, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if i % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


def eip55(address_hex: str) -> str:
    digest = keccak256(address_hex.encode()).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(d, 16) >= 8 else c
        for c, d in zip(address_hex, digest[:40], strict=True)
    )


# rule name -> (text containing the secret, the secret as the finding must cover it)
SECRET_SAMPLES: dict[str, tuple[str, str]] = {}


def _add(rule: str, value: str, template: str = "here it is: {} (done)") -> None:
    SECRET_SAMPLES[f"secret.{rule}"] = (template.format(value), value)


_add("aws_access_key_id", "AKIA" + rand(UPPER_ALNUM, 16))
_add("aws_secret_access_key", rand(B64, 40), "aws_secret_access_key = {}")
_add("amazon_mws_token", "amzn.mws." + uuid())
for _prefix, _rule in (
    ("ghp", "github_pat"),
    ("gho", "github_oauth_token"),
    ("ghu", "github_user_to_server_token"),
    ("ghs", "github_server_to_server_token"),
    ("ghr", "github_refresh_token"),
):
    _add(_rule, f"{_prefix}_" + rand(ALNUM, 36))
_add("github_fine_grained_pat", "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59))
_add("gitlab_pat", "glpat-" + rand(ALNUM, 20))
_add("gitlab_deploy_token", "gldt-" + rand(ALNUM, 20))
_add("gitlab_runner_token", "glrt-" + rand(ALNUM, 20))
_add("gitlab_runner_registration_token", "GR1348941" + rand(ALNUM, 20))
_add("gitlab_pipeline_trigger_token", "glptt-" + rand(ALNUM, 40))
_add("gitlab_ci_job_token", "glcbt-" + rand(ALNUM, 2) + "_" + rand(ALNUM, 20))
_add("gitlab_oauth_app_secret", "gloas-" + rand(ALNUM, 64))
_add("gitlab_service_token", "glft-" + rand(ALNUM, 20))
_add("slack_bot_token", f"xoxb-{rand(DIGITS, 11)}-{rand(DIGITS, 12)}-{rand(ALNUM, 24)}")
_add(
    "slack_user_token",
    f"xoxp-{rand(DIGITS, 11)}-{rand(DIGITS, 12)}-{rand(DIGITS, 12)}-{rand(HEX, 32)}",
)
_add("slack_app_token", f"xapp-1-A{rand(UPPER_ALNUM, 10)}-{rand(DIGITS, 13)}-{rand(HEX, 64)}")
_add("slack_config_token", "xoxe.xoxp-1-" + rand(UPPER_ALNUM, 163))
_add("slack_refresh_token", "xoxe-1-" + rand(UPPER_ALNUM, 146))
_add("slack_legacy_token", f"xoxs-{rand(DIGITS, 10)}-{rand(ALNUM, 24)}")
_add(
    "slack_webhook_url",
    "https://hooks.slack.com/services/T"
    f"{rand(UPPER_ALNUM, 8)}/B{rand(UPPER_ALNUM, 8)}/{rand(ALNUM, 24)}",
)
_add("openai_project_key", "sk-proj-" + rand(ALNUM, 100))
_add("openai_api_key", "sk-" + rand(ALNUM, 48))
_add("anthropic_api_key", "sk-ant-api03-" + rand(ALNUM, 93) + "AA")
_add("anthropic_admin_key", "sk-ant-admin01-" + rand(ALNUM, 93) + "AA")
_add("huggingface_token", "hf_" + rand(string.ascii_letters, 34))
_add("huggingface_org_token", "api_org_" + rand(string.ascii_letters, 34))
_add("groq_api_key", "gsk_" + rand(ALNUM, 52))
_add("perplexity_api_key", "pplx-" + rand(ALNUM, 48))
_add("xai_api_key", "xai-" + rand(ALNUM, 80))
_add("replicate_api_token", "r8_" + rand(ALNUM, 37))
_add("stripe_secret_key", "sk_live_" + rand(ALNUM, 24))
_add("stripe_restricted_key", "rk_live_" + rand(ALNUM, 24))
_add("stripe_webhook_secret", "whsec_" + rand(ALNUM, 32))
_add("square_access_token", "EAAA" + rand(URLSAFE, 60))
_add("square_oauth_secret", "sq0csp-" + rand(ALNUM, 43))
_add("shippo_api_token", "shippo_live_" + rand(HEX, 40))
_add("flutterwave_secret_key", "FLWSECK_TEST-" + rand("abcdefgh0123456789", 32) + "-X")
_add("google_api_key", "AIza" + rand(ALNUM, 35))
_add("google_oauth_client_secret", "GOCSPX-" + rand(ALNUM, 28))
_add("google_oauth_access_token", "ya29." + rand(URLSAFE, 60))
_KEY = "-----BEGIN PRIVATE KEY-----\\n" + rand(B64, 64) + "\\n-----END PRIVATE KEY-----\\n"
_add(
    "gcp_service_account_key",
    _KEY,
    '{{"type": "service_account", "project_id": "demo", "private_key": "{}"}}',
)
_add(
    "azure_storage_account_key",
    rand(B64, 86) + "==",
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};EndpointSuffix=core.windows.net",
)
_add(
    "azure_shared_access_key",
    rand(B64, 43) + "=",
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={}",
)
_add(
    "azure_sas_token",
    rand(ALNUM, 43) + "%3D",
    "https://acct.blob.core.windows.net/c/b.txt?sv=2021-06-08&se=2030-01-01&sp=r&sig={}",
)
_add("azure_ad_client_secret", rand(ALNUM, 3) + "8Q~" + rand(ALNUM + "_~.-", 34))
_add(
    "microsoft_teams_webhook",
    f"https://acme.webhook.office.com/webhookb2/{uuid()}@{uuid()}"
    f"/IncomingWebhook/{rand(HEX, 32)}/{uuid()}",
)
_add("alibaba_access_key_id", "LTAI" + rand(ALNUM, 20))
_add("digitalocean_pat", "dop_v1_" + rand(HEX, 64))
_add("digitalocean_oauth_token", "doo_v1_" + rand(HEX, 64))
_add("heroku_api_key", "HRKU-AA" + rand(URLSAFE, 58))
_add("heroku_api_key_legacy", uuid(), "my heroku token is {}")
_add("cloudflare_api_token", rand(ALNUM, 40), "cloudflare token {}")
_add("cloudflare_global_api_key", rand(HEX, 37), "cloudflare X-Auth-Key {}")
_add("cloudflare_origin_ca_key", f"v1.0-{rand(HEX, 24)}-{rand(HEX, 146)}")
_add("fastly_api_token", rand(ALNUM, 32), "fastly key {}")
_add("vault_service_token", "hvs." + rand(ALNUM, 90))
_add("vault_batch_token", "hvb." + rand(ALNUM, 138))
_add("terraform_cloud_token", rand(ALNUM, 14) + ".atlasv1." + rand(ALNUM, 67))
_add("pulumi_access_token", "pul-" + rand(HEX, 40))
_add("doppler_token", "dp.pt." + rand(ALNUM, 43))
_add("tailscale_key", f"tskey-auth-{rand(ALNUM, 10)}-{rand(ALNUM, 30)}")
_add("docker_hub_token", "dckr_pat_" + rand(ALNUM, 27))
_add("databricks_token", "dapi" + rand(HEX, 32))
_add("planetscale_token", "pscale_tkn_" + rand(ALNUM, 43))
_add("planetscale_password", "pscale_pw_" + rand(ALNUM, 43))
_add("supabase_secret_key", "sb_secret_" + rand(ALNUM, 31))
_add("supabase_access_token", "sbp_" + rand(HEX, 40))
_add("jfrog_api_key", "AKCp" + rand(ALNUM, 69))
_add("jfrog_reference_token", "cmVmdGtu" + rand(ALNUM, 56))
_add("npm_token", "npm_" + rand(ALNUM, 36))
_add("pypi_token", "pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 70))
_add("rubygems_api_key", "rubygems_" + rand(HEX, 48))
_add("nuget_api_key", "oy2" + rand(LOWER_ALNUM, 43))
_add("clojars_token", "CLOJARS_" + rand(LOWER_ALNUM, 60))
_add("twilio_api_key", "SK" + rand(HEX, 32))
_add("twilio_auth_token", rand(HEX, 32), "twilio auth token {}")
_add("sendgrid_api_key", f"SG.{rand(URLSAFE, 22)}.{rand(URLSAFE, 43)}")
_add("mailgun_api_key", "key-" + rand(ALNUM, 32), "mailgun {}")
_add("mailgun_signing_key", f"{rand(HEX, 32)}-{rand(HEX, 8)}-{rand(HEX, 8)}", "mailgun signing {}")
_add("mailchimp_api_key", rand(HEX, 32) + "-us12")
_add("discord_bot_token", f"M{rand(ALNUM, 23)}.{rand(ALNUM, 6)}.{rand(ALNUM, 27)}")
_add(
    "discord_webhook_url",
    f"https://discord.com/api/webhooks/{rand(DIGITS, 18)}/{rand(URLSAFE, 68)}",
)
_add("telegram_bot_token", f"{rand(DIGITS, 10)}:AA{rand(ALNUM, 33)}")
_add("twitter_bearer_token", "AAAAAAAAAAAAAAAAAAAAA" + rand(ALNUM, 60))
_add("atlassian_api_token", "ATATT3" + rand(ALNUM, 186))
_add("bitbucket_app_password", "ATBB" + rand(ALNUM, 32))
_add("linear_api_key", "lin_api_" + rand(ALNUM, 40))
_add("linear_oauth_token", "lin_oauth_" + rand(HEX, 64))
_add("notion_token", "ntn_" + rand(DIGITS, 11) + rand(ALNUM, 35))
_add("notion_legacy_token", "secret_" + rand(ALNUM, 43), "notion integration {}")
_add("figma_token", "figd_" + rand(ALNUM, 40))
_add("airtable_token", f"pat{rand(ALNUM, 14)}.{rand(HEX, 64)}")
_add("dropbox_token", "sl." + rand(URLSAFE, 140))
_add("contentful_token", "CFPAT-" + rand(ALNUM, 43))
_add("readme_api_key", "rdme_" + rand(LOWER_ALNUM, 70))
_add("postman_api_key", f"PMAK-{rand(HEX, 24)}-{rand(HEX, 34)}")
_add("mapbox_secret_token", f"sk.eyJ{rand(URLSAFE, 60)}.{rand(URLSAFE, 22)}")
_add("datadog_api_key", rand(HEX, 32), "datadog api key {}")
_add("datadog_app_key", rand(HEX, 40), "DD_APP_KEY {}")
_add("newrelic_user_api_key", "NRAK-" + rand(UPPER_ALNUM, 27))
_add("newrelic_insights_key", "NRII-" + rand(ALNUM, 32))
_add("newrelic_license_key", rand(HEX, 36) + "NRAL")
_add("sentry_dsn", rand(HEX, 32), "https://{}@o123456.ingest.sentry.io/4504")
_add("sentry_org_token", f"sntrys_eyJ{rand(ALNUM, 80)}_{rand(ALNUM, 43)}")
_add("sentry_user_token", "sntryu_" + rand(HEX, 64))
_add("grafana_cloud_token", "glc_" + rand(ALNUM, 48))
_add("grafana_service_account_token", f"glsa_{rand(ALNUM, 32)}_{rand(HEX, 8)}")
_add("grafana_api_key", "eyJrIjoi" + rand(ALNUM, 80))
_add("dynatrace_token", f"dt0c01.{rand(UPPER_ALNUM, 24)}.{rand(UPPER_ALNUM, 64)}")
_add("okta_api_token", "00" + rand(ALNUM, 40), "okta SSWS {}")
_add("onepassword_service_account_token", "ops_eyJ" + rand(B64, 260))
_add("onepassword_secret_key", "A3-" + "-".join(rand(UPPER_ALNUM, n) for n in (6, 11, 5, 5, 5)))
_add("age_secret_key", "AGE-SECRET-KEY-1" + rand("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58))
_add("sourcegraph_token", "sgp_" + rand(HEX, 40))
_add("harness_token", f"pat.{rand(ALNUM, 22)}.{rand(ALNUM, 24)}.{rand(ALNUM, 20)}")
_add("prefect_api_key", "pnu_" + rand(ALNUM, 36))
_add("infracost_api_key", "ico-" + rand(ALNUM, 32))
_add("jwt", jwt())
_add("private_key", f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body()}\n-----END RSA PRIVATE KEY-----")
_add(
    "ssh_private_key",
    f"-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body()}\n-----END OPENSSH PRIVATE KEY-----",
)
_add(
    "pgp_private_key",
    f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{pem_body()}\n-----END PGP PRIVATE KEY BLOCK-----",
)
_add(
    "putty_private_key",
    "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\n"
    f"Public-Lines: 2\n{pem_body(2)}\nPrivate-Lines: 1\n{pem_body(1)}\n"
    f"Private-MAC: {rand(HEX, 64)}",
)
_add("private_key_partial", f"-----BEGIN PRIVATE KEY-----\n{pem_body(2)}", "pasted: {}")
_PW = rand(ALNUM, 16)
_add("postgres_url_password", _PW, "postgresql://app:{}@db.internal:5432/app")
_add("mysql_url_password", _PW, "mysql://root:{}@10.1.2.3/shop")
_add("mongodb_url_password", _PW, "mongodb+srv://svc:{}@cluster0.abcde.mongodb.net/?retryWrites=1")
_add("redis_url_password", _PW, "redis://:{}@cache:6379/0")
_add("amqp_url_password", _PW, "amqp://guest:{}@rabbit:5672/")
_add("url_basic_auth", _PW, "git clone https://deploy:{}@git.example.com/repo.git")
_add("http_authorization_header", rand(URLSAFE, 40), "Authorization: Bearer {}")
_add("http_token_header", rand(ALNUM, 32), "curl -H 'Api-Token: {}' https://api.example.com/v1")
_add("password_assignment", "Tr0ub4dor!3xyz", "DB_PASSWORD={}")
_add("password_quoted", "correct horse battery staple", 'passphrase: "{}"')
_add("password_in_prose", "Winter2024!", "fyi my password is {} for the VPN")
_add("secret_assignment", rand(ALNUM, 32), "oktaApiToken: {}")
_add("slack_legacy_bot_token", f"xoxb-{rand(DIGITS, 12)}-{rand(ALNUM, 24)}")
_add("sourcegraph_legacy_token", rand(HEX, 40), "SOURCEGRAPH_TOKEN {}")
_add("npm_auth_token", rand(URLSAFE, 36), "//registry.npmjs.org/:_authToken={}")
_add("sidekiq_secret", f"{rand(HEX, 8)}:{rand(HEX, 8)}", "BUNDLE_ENTERPRISE__CONTRIBSYS__COM={}")
_add("sidekiq_url", f"{rand(HEX, 8)}:{rand(HEX, 8)}", "source 'https://{}@gems.contribsys.com/'")
_add("sumologic_access_id", "su" + rand(ALNUM, 12), "SUMO_ACCESS_ID={}")
_add("sumologic_access_key", rand(ALNUM, 64), "sumologic access key: {}")
_add("snyk_token", uuid(), "my snyk token {}")
_add("sonarqube_token", "squ_" + rand(HEX, 40))
_add("sonarqube_legacy_token", rand(HEX, 40), "sonar.login={}")
_add("facebook_access_token", "EAAG" + rand(ALNUM, 180))
_add("facebook_app_secret", rand(HEX, 32), "facebook app secret {}")
_add("flyio_token", "fo1_" + rand(URLSAFE, 43))
_add("hubspot_private_app_token", "pat-na1-" + uuid())
_add("hubspot_api_key", uuid(), "hubspot hapikey {}")
_add("messagebird_api_key", rand(ALNUM, 25), "messagebird access key {}")
_add("intra42_client_secret", "s-s4t2ud-" + rand(HEX, 64))
_add("aws_bedrock_api_key", "ABSK" + rand(B64, 128))
_add("artifactory_password", "AP" + rand("0123456789ABCDEF", 1) + rand(ALNUM, 12), "artifactory {}")
_add("square_sandbox_token", "sandbox-sq0atb-" + rand(URLSAFE, 22))
_add("shopify_token", "shpat_" + rand(HEX, 32))
_add("brevo_api_key", f"xkeysib-{rand(HEX, 64)}-{rand(ALNUM, 16)}")
_add("easypost_api_key", "EZAK" + rand(LOWER_ALNUM, 54))
_add("duffel_api_token", "duffel_test_" + rand(URLSAFE, 43))
_add("frameio_api_token", "fio-u-" + rand(URLSAFE, 64))
_add("typeform_api_token", "tfp_" + rand(URLSAFE, 59))
_add("scalingo_api_token", "tk-us-" + rand(URLSAFE, 48))
_add("openshift_token", "sha256~" + rand(URLSAFE, 43))
_add("octopus_deploy_api_key", "API-" + rand(UPPER_ALNUM, 26))
_add("asana_pat", f"1/{rand(DIGITS, 16)}:{rand(ALNUM, 32)}")
_add("launchdarkly_key", "sdk-" + uuid())
_add("netlify_token", "nfp_" + rand(ALNUM, 36))
_add("plaid_access_token", "access-sandbox-" + uuid())
_add("postmark_server_token", uuid(), "postmark server token {}")
_add("algolia_api_key", rand(HEX, 32), "ALGOLIA_ADMIN_KEY={}")
_add("zendesk_api_token", rand(ALNUM, 40), "zendesk token {}")
_add("azure_openai_key", rand(HEX, 32), "azure-openai key {}")
_add("openrouter_api_key", "sk-or-v1-" + rand(HEX, 64))
_add("langsmith_api_key", f"lsv2_pt_{rand(HEX, 32)}_{rand(HEX, 10)}")
_add("pinecone_api_key", "pcsk_" + rand(ALNUM, 60))
_add("render_api_key", "rnd_" + rand(ALNUM, 32))


def _later(alphabet: str, size: int) -> str:
    """``rand`` from a second RNG: samples added later leave the earlier ones as they were."""
    while True:
        value = "".join(_LATER.choice(alphabet) for _ in range(size))
        mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
        if alphabet == DIGITS or mixed:
            return value


_LATER = random.Random(20261207)
_FB_APP_ID = "1" + _later(DIGITS, 15)
_add("facebook_app_access_token", _later(URLSAFE, 32), f"fb token {_FB_APP_ID}|{{}}")
_add("twilio_api_secret", _later(ALNUM, 32), "TWILIO_API_SECRET={}")
_add("sourcegraph_cody_token", "sgd_" + _later(HEX, 64))
_add("adafruit_io_key", "aio_" + _later(ALNUM, 28))
_add("password_colon", "Tr0ub4dor&" + _later(DIGITS, 2) + "x", "database:\n  password: {}\n")
_add("password_element", "Xq7" + _later(ALNUM, 10), "<password>{}</password>")
_add("pass_assignment", "S3cure!" + _later(ALNUM, 6), "login: admin / pass: {}")
_add("command_line_password", "Qz8" + _later(ALNUM, 9), "mysql -u root -p{} app")
_add("passphrase_in_prose", "purple monkey dishwasher", 'the wifi password is "{}"')
_add("secret_phrase", _later(ALNUM, 32), "the api key is {}")
_add("key_assignment", _later(ALNUM, 40), "MY_SERVICE_KEY={}")
_add("adobe_client_secret", "p8e-" + _later(LOWER_ALNUM, 32))
_add("clickhouse_cloud_secret", "4b1d" + _later(ALNUM, 38))
_add("defined_networking_token", f"dnkey-{_later(LOWER_ALNUM, 26)}-{_later(LOWER_ALNUM, 52)}")
_add("gocardless_token", "live_" + _later(URLSAFE, 40), "GOCARDLESS_ACCESS_TOKEN={}")
_add("lob_api_key", "live_" + _later(HEX, 35), "lob api key {}")
_add("maxmind_license_key", f"{_later(ALNUM, 6)}_{_later(ALNUM, 29)}_mmk")
_add("newrelic_browser_key", "NRJS-" + _later(HEX, 19))
_add("settlemint_token", "sm_pat_" + _later(ALNUM, 16))
_add("yandex_cloud_key", "AQVN" + _later(URLSAFE, 36), "yandex iam token {}")
_add("gitlab_session_cookie", _later(HEX, 32), "Cookie: _gitlab_session={}")
_add("twitch_token", _later(LOWER_ALNUM, 30), "TWITCH_OAUTH_TOKEN={}")
_add("deno_deploy_token", "ddp_" + _later(ALNUM, 36))
_add("beamer_api_token", "b_" + _later(URLSAFE, 44), "BEAMER_TOKEN={}")
_add("session_cookie", _later(ALNUM, 32), "Cookie: theme=dark; sessionid={}")
_add("credentials_pair", "Kq7!" + _later(ALNUM, 8), "credentials: bob / {}")


# --- PII corpora ---------------------------------------------------------------

MASTERCARD = luhn_complete("51", 16)
_IPV6 = "2001:db8:85a3::8a2e:370:7334"
_GB_IBAN = iban("GB", "WEST12345698765432")
_BTC = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
_BECH32 = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
_ETH = eip55("fb6916095ca1df60bb79ce92ce3ea74c37c5d359")
_EMAIL = "jane.roe+news@mail.example.co.uk"

POSITIVES: list[tuple[str, str, str, str]] = [
    # (entity, label, text, the value the finding must cover)
    ("CREDIT_CARD", "CREDIT_CARD", "card 4111 1111 1111 1111 exp 09/27", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "CREDIT_CARD", "4111 1111 1111 1111 123 (cvv)", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "CREDIT_CARD", "amex 3782-822463-10005.", "3782-822463-10005"),
    ("CREDIT_CARD", "CREDIT_CARD", f"pan={MASTERCARD}", MASTERCARD),
    ("US_SSN", "SSN", "SSN 219-09-9988 on file", "219-09-9988"),
    ("US_SSN", "SSN", "ssn: 536221234", "536221234"),
    ("US_ITIN", "ITIN", "ITIN 912-70-1234", "912-70-1234"),
    ("EMAIL_ADDRESS", "EMAIL", f"write to {_EMAIL}.", _EMAIL),
    ("EMAIL_ADDRESS", "EMAIL", "grüße an jörg@münchen.de!", "jörg@münchen.de"),
    ("PHONE_NUMBER", "PHONE", "call (415) 555-2671 now", "(415) 555-2671"),
    ("PHONE_NUMBER", "PHONE", "tel: +44 20 7946 0958", "+44 20 7946 0958"),
    ("IP_ADDRESS", "IP_ADDRESS", "from 203.0.113.7, port 22", "203.0.113.7"),
    ("IP_ADDRESS", "IP_ADDRESS", f"host {_IPV6} up", _IPV6),
    ("IBAN_CODE", "IBAN", "IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    ("IBAN_CODE", "IBAN", f"to {_GB_IBAN}.", _GB_IBAN),
    ("MAC_ADDRESS", "MAC_ADDRESS", "hw 00:1B:63:84:45:E6.", "00:1B:63:84:45:E6"),
    ("MAC_ADDRESS", "MAC_ADDRESS", "cisco 001b.6384.45e6 port", "001b.6384.45e6"),
    ("DATE_TIME", "DATE_OF_BIRTH", "DOB: 03/15/1985", "03/15/1985"),
    ("DATE_TIME", "DATE_OF_BIRTH", "she was born on 12 March 1985.", "12 March 1985"),
    ("CRYPTO", "CRYPTO", f"btc {_BTC}", _BTC),
    ("CRYPTO", "CRYPTO", f"to {_BECH32}", _BECH32),
    ("CRYPTO", "CRYPTO", f"send to {_ETH}", _ETH),
    ("CRYPTO", "CRYPTO", "my eth wallet address 0x" + "ab12" * 10, "0x" + "ab12" * 10),
]

HARD_NEGATIVES = [
    "commit 3f2c1a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a on main",
    "request 123e4567-e89b-12d3-a456-426614174000 failed",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Where is my order ORD-2024-811154?",
    "Invoice PO-4517063878 is overdue.",
    "2024-01-15T10:30:00Z started, 10:30:00 finished, created_at: 1758406925",
    "Upgrade to 10.0.19041.1 then 1.2.3.4.5 and v1.2.3.4, see version 3.11.4",
    "Reference 4111 1111 1111 1112 is not a card (Luhn fails)",
    "Card number 3052-854053-0672 was rejected as invalid.",
    "Example: SSN 123-45-6789 and 078-05-1120 are samples",
    "See ISBN 978-0-306-40615-7 for details.",
    "for i in range(1024): buf[i] = (i * 2654435761) % 4294967296",
    "std::vector<int> v; Foo::Bar::baz(); a::b",
    "listening on localhost:8080 and port 5432",
    "price $1,234.56 and 99.5% of 1000000 users",
    "the meeting is on 03/15/2024 at 10am",
    "logo@2x.png and icon@3x.jpg",
    "0x" + "ab12" * 10 + " is the keccak of the block",
    "broadcast ff:ff:ff:ff:ff:ff and 00:00:00:00:00:00",
    "lottery: 4 8 15 16 23 42 7 9 11",
]

# Text crafted to be slow, about 50 KB each.
ADVERSARIAL = {
    "digits": "1" * 50_000,
    "spaced digits": "1 " * 25_000,
    "dotted digits": "1." * 25_000,
    "an endless local part": "a" * 49_999 + "@",
    "keys that never end": "-----BEGIN PRIVATE KEY-----\n" * 1_800,
    "zero-width digits": "1\u200b" * 25_000,
    "assignments": "password=abcdefgh1 " * 2_600,
    "addresses": "x@example.com " * 3_500,
    "hex": "0123456789abcdef" * 3_100,
}
