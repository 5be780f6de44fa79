// The provider preset table: one entry per provider, each with the page its facts come from.
// Facts were read from the providers' documentation (November 2026) and are restated here;
// only ports a provider documents are listed. To change a preset, change only this table
// (and the table in docs/CONFIGURATION.md).
#include "provider_presets.hpp"

#include <cctype>

namespace portrelay::config::detail {
namespace {

constexpr TlsMode kStartTls = TlsMode::StartTls;
constexpr TlsMode kImplicit = TlsMode::Implicit;

// "us-east-1", "eu-central-2", "us-gov-west-1": lowercase words joined by '-', the last one a
// number. Checked only for shape so a region AWS adds later needs no new release.
bool is_aws_region_name(std::string_view region) {
  if (region.empty() || region.size() > 32) return false;
  const std::size_t last_dash = region.rfind('-');
  if (last_dash == std::string_view::npos || last_dash == 0) return false;
  const std::string_view number = region.substr(last_dash + 1);
  if (number.empty()) return false;
  for (char c : number)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  bool previous_dash = true;  // no leading dash, no "--"
  for (char c : region.substr(0, last_dash)) {
    if (c == '-') {
      if (previous_dash) return false;
      previous_dash = true;
    } else if (c >= 'a' && c <= 'z') {
      previous_dash = false;
    } else {
      return false;
    }
  }
  return !previous_dash;
}

}  // namespace

const std::vector<ProviderPreset>& provider_presets() {
  static const std::vector<ProviderPreset> presets = {
      {.name = "ses",
       .host = "email-smtp.{region}.amazonaws.com",
       .region_hosts = {},
       // STARTTLS on 25, 587 and 2587; TLS from the first byte ("TLS Wrapper") on 465, 2465.
       .ports = {{2587, kStartTls}, {2465, kImplicit}, {587, kStartTls}, {465, kImplicit}},
       .username = "",  // the SMTP credentials' user name (not the IAM access key id)
       .source = "Amazon SES Developer Guide, \"Connecting to an Amazon SES SMTP endpoint\" "
                 "(docs.aws.amazon.com/ses/latest/dg/smtp-connect.html)",
       // 14 msgs/s is a common production default (each account's own is in the console:
       // raise max_message_rate to match); past it SES answers "454 Throttling failure:
       // Maximum sending rate exceeded", which the default throttle_patterns match, and
       // "454 Throttling failure: Daily message quota exceeded" (quota_patterns).
       .max_message_rate = 14,
       .max_message_rate_text = "14/s",
       .limits_source = "Amazon SES Developer Guide, \"Managing your Amazon SES sending "
                        "quotas\" and \"Errors related to sending quotas\" "
                        "(docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas.html); "
                        "shared/PROVIDERS.md"},
      {.name = "sendgrid",
       .host = "smtp.sendgrid.net",
       .region_hosts = {},
       // 25, 587 and 2525 plain or STARTTLS; 465 SSL. The user name is literally "apikey".
       .ports = {{2525, kStartTls}, {587, kStartTls}, {465, kImplicit}},
       .username = "apikey",
       .source = "Twilio SendGrid docs, \"Integrating with the SMTP API\" "
                 "(twilio.com/docs/sendgrid/for-developers/sending-email/"
                 "integrating-with-the-smtp-api)"},
      {.name = "mailgun",
       .host = "",
       .region_hosts = {{"us", "smtp.mailgun.org"}, {"eu", "smtp.eu.mailgun.org"}},
       // 25, 587 and 2525 with STARTTLS; 465 with TLS from the first byte.
       .ports = {{2525, kStartTls}, {587, kStartTls}, {465, kImplicit}},
       .username = "",  // per sending domain, e.g. postmaster@mg.example.com
       .source = "Mailgun documentation, \"Sending via SMTP\" (documentation.mailgun.com), "
                 "and Google Cloud's \"Sending email with Mailgun\" for the EU host"},
      {.name = "postmark",
       .host = "smtp.postmarkapp.com",
       .region_hosts = {},
       // 25, 2525 and 587, TLS by STARTTLS; no port with TLS from the first byte.
       .ports = {{2525, kStartTls}, {587, kStartTls}},
       .username = "",  // the Server API Token, which is the password too
       .source = "Postmark Support Center, \"What are the SMTP details / API Tokens I should "
                 "be using?\" (postmarkapp.com/support/article/811)",
       // 10 MB per message including attachments.
       .max_message_size = 10ull * 1000 * 1000,
       .limits_source = "Postmark Support Center, message size limit of 10 MB including "
                        "attachments; shared/PROVIDERS.md"},
      {.name = "resend",
       .host = "smtp.resend.com",
       .region_hosts = {},
       // SMTPS on 465 and 2465; STARTTLS on 25, 587 and 2587. The user name is "resend".
       .ports = {{2587, kStartTls}, {2465, kImplicit}, {587, kStartTls}, {465, kImplicit}},
       .username = "resend",
       .source = "Resend docs, \"Send emails with SMTP\" (resend.com/docs/send-with-smtp)"},
      {.name = "brevo",
       .host = "smtp-relay.brevo.com",
       .region_hosts = {},
       // 587 and 2525 without TLS from the first byte (STARTTLS required here), 465 with it.
       .ports = {{2525, kStartTls}, {587, kStartTls}, {465, kImplicit}},
       .username = "",  // the SMTP login shown in Brevo's SMTP & API settings
       .source = "Brevo developer docs, \"SMTP relay integration\" "
                 "(developers.brevo.com/docs/smtp-integration)"},
      {.name = "gmail",
       .host = "smtp.gmail.com",
       .region_hosts = {},
       // 587 with STARTTLS, 465 with TLS from the first byte; no alternative port.
       .ports = {{587, kStartTls}, {465, kImplicit}},
       .username = "",  // the full Gmail or Workspace address (with an app password)
       .source = "Google Workspace Admin Help, \"Send email from a printer, scanner, or app\", "
                 "and Gmail's IMAP/SMTP settings page (developers.google.com/workspace/gmail/"
                 "imap/imap-smtp)",
       // 500 a day for a consumer account, 2,000 for Workspace (secondary source): the
       // lower figure, since a Workspace operator raising it loses nothing and a consumer
       // account over it is blocked for a day ("550 5.4.5 Daily user sending limit
       // exceeded", matched by quota_patterns and never bounced).
       .max_recipients_per_day = 500,
       .limits_source = "Google Workspace Admin Help, \"Gmail sending limits in Google "
                        "Workspace\" (support.google.com/a/answer/166852), and Gmail Help "
                        "\"Limits for sending & getting mail\" (secondary); shared/PROVIDERS.md"},
      {.name = "microsoft365",
       .host = "smtp.office365.com",
       .region_hosts = {},
       // SMTP AUTH client submission: 587 (recommended) or 25, STARTTLS. 25 left out.
       .ports = {{587, kStartTls}},
       .username = "",  // the mailbox's sign-in address
       .source = "Microsoft Learn, \"How to set up a multifunction device or application to "
                 "send email using Microsoft 365 or Office 365\" (SMTP AUTH client "
                 "submission)",
       // 3 concurrent connections per mailbox ("432 4.3.2 ... concurrent connection limit
       // exceeded" past them), 30 messages a minute (secondary), 10,000 recipients a day.
       .max_message_rate = 0.5,
       .max_message_rate_text = "30/min",
       .max_connections = 3,
       .max_recipients_per_day = 10000,
       .limits_source = "Microsoft Learn, \"Exchange Online limits\" (sending limits: "
                        "10,000 recipients a day, 30 messages a minute; SMTP AUTH client "
                        "submission: 3 concurrent connections); shared/PROVIDERS.md"},
  };
  return presets;
}

const ProviderPreset* find_provider_preset(std::string_view name) {
  for (const ProviderPreset& preset : provider_presets())
    if (preset.name == name) return &preset;
  return nullptr;
}

std::string provider_preset_names() {
  std::string names;
  for (const ProviderPreset& preset : provider_presets()) {
    if (!names.empty()) names += ", ";
    names += "\"" + std::string(preset.name) + "\"";
  }
  return names;
}

std::optional<std::string> preset_host(const ProviderPreset& preset, std::string_view region) {
  if (!preset.region_hosts.empty()) {
    for (const RegionHost& candidate : preset.region_hosts)
      if (candidate.region == region) return std::string(candidate.host);
    return std::nullopt;
  }
  std::string host(preset.host);
  const std::size_t at = host.find("{region}");
  if (at == std::string::npos) return host;
  if (!is_aws_region_name(region)) return std::nullopt;
  return host.replace(at, std::string_view("{region}").size(), region);
}

std::optional<TlsMode> preset_tls_for_port(const ProviderPreset& preset, std::uint16_t port) {
  for (const PresetPort& candidate : preset.ports)
    if (candidate.port == port) return candidate.tls;
  return std::nullopt;
}

}  // namespace portrelay::config::detail
