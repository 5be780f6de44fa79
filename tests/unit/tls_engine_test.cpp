// TLS contexts, engines and the generated test PKI, exercised entirely in memory: a client
// and a server Engine exchange ciphertext through strings, no sockets involved.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "portrelay/demo/test_pki.hpp"
#include "portrelay/tls/context.hpp"
#include "portrelay/tls/engine.hpp"

namespace portrelay::tls {
namespace {

using State = Engine::State;
using Failure = Engine::Failure;

// One PKI for the whole binary: key generation is the slow part.
class TlsPki {
 public:
  static const GeneratedPki& get() {
    static TlsPki instance;
    return instance.pki_;
  }

 private:
  TlsPki() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "portrelay-tls-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    dir_ = pattern;
    pki_ = generate_test_pki(dir_ + "/pki");
  }
  ~TlsPki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string dir_;
  GeneratedPki pki_;
};

std::shared_ptr<Context> client_context(bool verify_peer = true) {
  return Context::client({.ca_file = TlsPki::get().ca_cert, .verify_peer = verify_peer});
}

std::shared_ptr<Context> server_context(const std::string& cert, const std::string& key) {
  return Context::server({.cert_file = cert, .key_file = key});
}

std::shared_ptr<Context> good_server_context() {
  return server_context(TlsPki::get().good_cert, TlsPki::get().good_key);
}

// Moves ciphertext both ways until neither side has anything left to say, collecting
// the plaintext each side receives.
struct Pair {
  std::unique_ptr<Engine> client;
  std::unique_ptr<Engine> server;
  std::string client_received;
  std::string server_received;

  void pump() {
    for (int round = 0; round < 1000; ++round) {
      std::string to_server = client->take_ciphertext();
      std::string to_client = server->take_ciphertext();
      if (to_server.empty() && to_client.empty()) {
        break;
      }
      server->feed_ciphertext(to_server);
      client->feed_ciphertext(to_client);
      client_received += client->take_plaintext();
      server_received += server->take_plaintext();
    }
  }
};

Pair connect(std::shared_ptr<Context> client_ctx, std::shared_ptr<Context> server_ctx,
             const std::string& server_name) {
  Pair pair{Engine::client(std::move(client_ctx), server_name),
            Engine::server(std::move(server_ctx))};
  pair.pump();
  return pair;
}

std::string pattern_bytes(size_t size, unsigned seed) {
  std::string bytes(size, '\0');
  unsigned value = seed;
  for (char& c : bytes) {
    value = value * 1103515245u + 12345u;
    c = static_cast<char>(value >> 24);
  }
  return bytes;
}

// ---------------------------------------------------------------- handshakes

TEST(TlsEngine, HandshakeWithCaFileAndLocalhost) {
  Pair pair = connect(client_context(), good_server_context(), "localhost");
  ASSERT_EQ(pair.client->state(), State::Established) << pair.client->error();
  ASSERT_EQ(pair.server->state(), State::Established) << pair.server->error();
  EXPECT_EQ(pair.client->failure(), Failure::None);
  EXPECT_TRUE(pair.client->error().empty());
  const std::string version = pair.client->protocol_version();
  EXPECT_TRUE(version == "TLSv1.2" || version == "TLSv1.3") << version;
  EXPECT_EQ(pair.server->protocol_version(), version);
  EXPECT_FALSE(pair.client->cipher().empty());
  EXPECT_EQ(pair.client->cipher(), pair.server->cipher());
}

TEST(TlsEngine, VersionAndCipherEmptyBeforeHandshake) {
  auto client = Engine::client(client_context(), "localhost");
  EXPECT_EQ(client->state(), State::Handshaking);
  EXPECT_EQ(client->protocol_version(), "");
  EXPECT_EQ(client->cipher(), "");
  // The ClientHello is ready as soon as the engine exists: a TLS handshake record.
  const std::string hello = client->take_ciphertext();
  ASSERT_GE(hello.size(), 5u);
  EXPECT_EQ(hello[0], '\x16');
}

TEST(TlsEngine, NegotiatesTls12WhenServerCapsAtIt) {
  auto server_ctx = good_server_context();
  ASSERT_EQ(SSL_CTX_set_max_proto_version(server_ctx->native(), TLS1_2_VERSION), 1);
  Pair pair = connect(client_context(), server_ctx, "localhost");
  ASSERT_EQ(pair.client->state(), State::Established) << pair.client->error();
  EXPECT_EQ(pair.client->protocol_version(), "TLSv1.2");
  EXPECT_EQ(pair.server->protocol_version(), "TLSv1.2");
}

TEST(TlsEngine, RefusesPeerBelowTls12) {
  auto server_ctx = good_server_context();
  // Bypass our own floor on the server to impersonate an old TLS 1.1 peer.
  SSL_CTX_set_security_level(server_ctx->native(), 0);
  ASSERT_EQ(SSL_CTX_set_min_proto_version(server_ctx->native(), TLS1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(server_ctx->native(), TLS1_1_VERSION), 1);
  Pair pair = connect(client_context(), server_ctx, "localhost");
  EXPECT_EQ(pair.client->state(), State::Failed);
  EXPECT_EQ(pair.client->failure(), Failure::Handshake);
  EXPECT_EQ(pair.server->state(), State::Failed);
  EXPECT_EQ(pair.server->failure(), Failure::Handshake);
}

TEST(TlsEngine, WrongHostIsVerifyFailure) {
  const auto& pki = TlsPki::get();
  Pair pair = connect(client_context(), server_context(pki.wrong_host_cert, pki.wrong_host_key),
                      "localhost");
  EXPECT_EQ(pair.client->state(), State::Failed);
  EXPECT_EQ(pair.client->failure(), Failure::Verify);
  EXPECT_EQ(pair.client->error(), "certificate verify failed: hostname mismatch");
  // The client's alert reaches the server, which fails too instead of hanging.
  EXPECT_EQ(pair.server->state(), State::Failed);
  EXPECT_EQ(pair.server->failure(), Failure::Handshake);
  EXPECT_NE(pair.server->error().find("alert"), std::string::npos) << pair.server->error();
}

TEST(TlsEngine, ExpiredCertificateIsVerifyFailure) {
  const auto& pki = TlsPki::get();
  Pair pair =
      connect(client_context(), server_context(pki.expired_cert, pki.expired_key), "localhost");
  EXPECT_EQ(pair.client->state(), State::Failed);
  EXPECT_EQ(pair.client->failure(), Failure::Verify);
  EXPECT_EQ(pair.client->error(), "certificate verify failed: certificate has expired");
}

TEST(TlsEngine, SelfSignedCertificateIsVerifyFailure) {
  const auto& pki = TlsPki::get();
  Pair pair = connect(client_context(), server_context(pki.self_signed_cert, pki.self_signed_key),
                      "localhost");
  EXPECT_EQ(pair.client->state(), State::Failed);
  EXPECT_EQ(pair.client->failure(), Failure::Verify);
  EXPECT_EQ(pair.client->error(), "certificate verify failed: self-signed certificate");
}

TEST(TlsEngine, SystemStoreDoesNotTrustTestCa) {
  auto system_ctx = Context::client({.ca_file = "", .verify_peer = true});
  Pair pair = connect(system_ctx, good_server_context(), "localhost");
  EXPECT_EQ(pair.client->state(), State::Failed);
  EXPECT_EQ(pair.client->failure(), Failure::Verify);
  EXPECT_EQ(pair.client->error(),
            "certificate verify failed: unable to get local issuer certificate");
}

TEST(TlsEngine, VerifyPeerFalseAcceptsSelfSignedAndWrongHost) {
  const auto& pki = TlsPki::get();
  Pair self_signed =
      connect(client_context(false), server_context(pki.self_signed_cert, pki.self_signed_key),
              "localhost");
  EXPECT_EQ(self_signed.client->state(), State::Established) << self_signed.client->error();
  EXPECT_EQ(self_signed.server->state(), State::Established);

  Pair wrong_host = connect(client_context(false),
                            server_context(pki.wrong_host_cert, pki.wrong_host_key), "localhost");
  EXPECT_EQ(wrong_host.client->state(), State::Established) << wrong_host.client->error();
}

TEST(TlsEngine, Ipv4LiteralVerifiedAgainstSanIp) {
  Pair pair = connect(client_context(), good_server_context(), "127.0.0.1");
  EXPECT_EQ(pair.client->state(), State::Established) << pair.client->error();
  EXPECT_EQ(pair.server->state(), State::Established);
}

TEST(TlsEngine, Ipv6LiteralVerifiedAgainstSanIp) {
  Pair pair = connect(client_context(), good_server_context(), "::1");
  EXPECT_EQ(pair.client->state(), State::Established) << pair.client->error();
}

TEST(TlsEngine, IpLiteralNotInSanIsVerifyFailure) {
  const auto& pki = TlsPki::get();
  Pair pair = connect(client_context(), server_context(pki.wrong_host_cert, pki.wrong_host_key),
                      "127.0.0.1");
  EXPECT_EQ(pair.client->state(), State::Failed);
  EXPECT_EQ(pair.client->failure(), Failure::Verify);
  EXPECT_EQ(pair.client->error(), "certificate verify failed: IP address mismatch");
}

TEST(TlsEngine, DnsNameIsNotMatchedAgainstIpSan) {
  // "127.0.0.2" is an IP literal not in the SAN; it must not pass as a DNS name either.
  Pair pair = connect(client_context(), good_server_context(), "127.0.0.2");
  EXPECT_EQ(pair.client->state(), State::Failed);
  EXPECT_EQ(pair.client->failure(), Failure::Verify);
  EXPECT_EQ(pair.client->error(), "certificate verify failed: IP address mismatch");
}

TEST(TlsEngine, GarbageCiphertextIsHandshakeFailure) {
  auto server = Engine::server(good_server_context());
  server->feed_ciphertext("EHLO example.org\r\n");
  EXPECT_EQ(server->state(), State::Failed);
  EXPECT_EQ(server->failure(), Failure::Handshake);
  EXPECT_NE(server->error().find("TLS handshake failed: "), std::string::npos);

  auto client = Engine::client(client_context(), "localhost");
  client->take_ciphertext();
  client->feed_ciphertext("220 mail.example.org ESMTP\r\n");
  EXPECT_EQ(client->state(), State::Failed);
  EXPECT_EQ(client->failure(), Failure::Handshake);
  EXPECT_NE(client->error().find("wrong version number"), std::string::npos) << client->error();

  // A failed engine ignores further input and output instead of crashing.
  client->feed_ciphertext(std::string(100, '\x17'));
  client->write_plaintext("QUIT\r\n");
  EXPECT_EQ(client->state(), State::Failed);
  EXPECT_EQ(client->take_plaintext(), "");
}

TEST(TlsEngine, FailureDoesNotLeakIntoNextConnection) {
  const auto& pki = TlsPki::get();
  Pair failed =
      connect(client_context(), server_context(pki.expired_cert, pki.expired_key), "localhost");
  ASSERT_EQ(failed.client->state(), State::Failed);
  Pair ok = connect(client_context(), good_server_context(), "localhost");
  EXPECT_EQ(ok.client->state(), State::Established) << ok.client->error();
  EXPECT_EQ(ok.server->state(), State::Established) << ok.server->error();
}

// ---------------------------------------------------------------- data

TEST(TlsEngine, DataBothWays) {
  Pair pair = connect(client_context(), good_server_context(), "localhost");
  ASSERT_EQ(pair.client->state(), State::Established);
  pair.client->write_plaintext("EHLO client.example\r\n");
  pair.pump();
  EXPECT_EQ(pair.server_received, "EHLO client.example\r\n");
  pair.server->write_plaintext("250-localhost\r\n");
  pair.server->write_plaintext("250 STARTTLS\r\n");
  pair.pump();
  EXPECT_EQ(pair.client_received, "250-localhost\r\n250 STARTTLS\r\n");
}

TEST(TlsEngine, WritesBeforeHandshakeAreDeliveredAfterIt) {
  Pair pair{Engine::client(client_context(), "localhost"), Engine::server(good_server_context())};
  pair.client->write_plaintext("early from client\r\n");
  pair.server->write_plaintext("early from server\r\n");
  EXPECT_EQ(pair.client->state(), State::Handshaking);
  pair.pump();
  ASSERT_EQ(pair.client->state(), State::Established) << pair.client->error();
  EXPECT_EQ(pair.server_received, "early from client\r\n");
  EXPECT_EQ(pair.client_received, "early from server\r\n");
}

TEST(TlsEngine, TwentyMebibytesInChunksByteExact) {
  Pair pair = connect(client_context(), good_server_context(), "localhost");
  ASSERT_EQ(pair.client->state(), State::Established);
  const std::string payload = pattern_bytes(20 * 1024 * 1024, 7);
  constexpr size_t kChunk = 64 * 1024 + 3;  // deliberately not a record multiple
  for (size_t offset = 0; offset < payload.size(); offset += kChunk) {
    pair.client->write_plaintext(std::string_view(payload).substr(offset, kChunk));
    pair.pump();
  }
  ASSERT_EQ(pair.server_received.size(), payload.size());
  EXPECT_TRUE(pair.server_received == payload);

  // The other direction in one go, fed to the client in odd-sized pieces.
  const std::string reply = pattern_bytes(3 * 1024 * 1024 + 11, 99);
  pair.server->write_plaintext(reply);
  const std::string ciphertext = pair.server->take_ciphertext();
  std::string received;
  for (size_t offset = 0; offset < ciphertext.size(); offset += 1000) {
    pair.client->feed_ciphertext(std::string_view(ciphertext).substr(offset, 1000));
    received += pair.client->take_plaintext();
  }
  EXPECT_EQ(pair.client->state(), State::Established) << pair.client->error();
  ASSERT_EQ(received.size(), reply.size());
  EXPECT_TRUE(received == reply);
}

TEST(TlsEngine, CloseNotifyClosesBothSides) {
  Pair pair = connect(client_context(), good_server_context(), "localhost");
  ASSERT_EQ(pair.client->state(), State::Established);
  pair.client->write_plaintext("QUIT\r\n");
  pair.client->shutdown();
  EXPECT_EQ(pair.client->state(), State::Established);  // until the peer answers
  pair.client->write_plaintext("after shutdown\r\n");   // dropped, not an error
  pair.pump();
  EXPECT_EQ(pair.server_received, "QUIT\r\n");
  EXPECT_EQ(pair.server->state(), State::Closed);
  EXPECT_EQ(pair.client->state(), State::Closed);
  EXPECT_EQ(pair.client->failure(), Failure::None);
  EXPECT_EQ(pair.server->failure(), Failure::None);
}

TEST(TlsEngine, ShutdownDuringHandshakeCloses) {
  auto client = Engine::client(client_context(), "localhost");
  client->shutdown();
  EXPECT_EQ(client->state(), State::Closed);
}

// ---------------------------------------------------------------- contexts

TEST(TlsContext, ClientRecordsVerifyFlag) {
  EXPECT_TRUE(client_context(true)->verify_peer());
  EXPECT_FALSE(client_context(false)->verify_peer());
  auto ctx = client_context(true);
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx->native()), SSL_VERIFY_PEER);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->native()), TLS1_2_VERSION);
  EXPECT_NE(SSL_CTX_get_options(ctx->native()) & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_EQ(SSL_CTX_get_verify_mode(client_context(false)->native()), SSL_VERIFY_NONE);
}

TEST(TlsContext, ServerUsesTls12Minimum) {
  auto ctx = good_server_context();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->native()), TLS1_2_VERSION);
  EXPECT_NE(SSL_CTX_get_options(ctx->native()) & SSL_OP_NO_COMPRESSION, 0u);
}

TEST(TlsContext, ServerRejectsMismatchedKey) {
  const auto& pki = TlsPki::get();
  try {
    server_context(pki.good_cert, pki.wrong_host_key);
    FAIL() << "expected TlsError";
  } catch (const TlsError& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("does not match"), std::string::npos) << what;
    EXPECT_NE(what.find(pki.wrong_host_key), std::string::npos) << what;
  }
}

TEST(TlsContext, MissingFilesNamedInError) {
  const auto& pki = TlsPki::get();
  const std::string missing = pki.dir + "/no-such-file.pem";
  const auto expect_named = [&](auto&& build) {
    try {
      build();
      ADD_FAILURE() << "expected TlsError";
    } catch (const TlsError& error) {
      EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
    }
  };
  expect_named([&] { server_context(missing, pki.good_key); });
  expect_named([&] { server_context(pki.good_cert, missing); });
  expect_named([&] { Context::client({.ca_file = missing}); });
}

TEST(TlsContext, KeyIsNotACertificate) {
  const auto& pki = TlsPki::get();
  EXPECT_THROW(server_context(pki.good_key, pki.good_key), TlsError);
  EXPECT_THROW(Context::client({.ca_file = pki.good_key}), TlsError);
}

// ---------------------------------------------------------------- client certificates (#18)

std::shared_ptr<Context> client_context_with_certificate() {
  const auto& pki = TlsPki::get();
  return Context::client(
      {.ca_file = pki.ca_cert, .cert_file = pki.good_cert, .key_file = pki.good_key});
}

// A server that asks for a client certificate and refuses a handshake without one.
std::shared_ptr<Context> server_requiring_client_certificate() {
  auto context = good_server_context();
  EXPECT_EQ(
      SSL_CTX_load_verify_locations(context->native(), TlsPki::get().ca_cert.c_str(), nullptr), 1);
  SSL_CTX_set_verify(context->native(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return context;
}

TEST(TlsClientCertificate, IsDescribedByItsSubjectAndFingerprint) {
  const auto context = client_context_with_certificate();
  const std::string& described = context->client_certificate();
  ASSERT_EQ(described.rfind("CN=localhost sha256=", 0), 0u) << described;
  EXPECT_EQ(described.size(), std::string("CN=localhost sha256=").size() + 64) << described;
  EXPECT_TRUE(client_context()->client_certificate().empty());
}

TEST(TlsClientCertificate, IsPresentedWhenTheServerAsks) {
  Pair pair = connect(client_context_with_certificate(), server_requiring_client_certificate(),
                      "localhost");
  ASSERT_EQ(pair.client->state(), State::Established) << pair.client->error();
  ASSERT_EQ(pair.server->state(), State::Established) << pair.server->error();
  EXPECT_TRUE(pair.client->certificate_requested());
}

TEST(TlsClientCertificate, IsNotReportedWhenTheServerDoesNotAsk) {
  Pair pair = connect(client_context_with_certificate(), good_server_context(), "localhost");
  ASSERT_EQ(pair.client->state(), State::Established) << pair.client->error();
  EXPECT_FALSE(pair.client->certificate_requested());
}

TEST(TlsClientCertificate, WithoutOneARequiringServerRefuses) {
  Pair pair = connect(client_context(), server_requiring_client_certificate(), "localhost");
  EXPECT_EQ(pair.server->state(), State::Failed);
  EXPECT_TRUE(pair.client->certificate_requested());
}

TEST(TlsClientCertificate, AKeyOfAnotherCertificateIsNamedAsAMismatch) {
  const auto& pki = TlsPki::get();
  try {
    Context::client({.cert_file = pki.good_cert, .key_file = pki.wrong_host_key});
    FAIL() << "no error";
  } catch (const TlsError& error) {
    EXPECT_NE(std::string(error.what()).find("does not match certificate"), std::string::npos)
        << error.what();
  }
}

// ---------------------------------------------------------------- test PKI

X509* read_cert(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return nullptr;
  X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  return cert;
}

TEST(TlsTestPki, KeysArePrivateAndCertsReadable) {
  const auto& pki = TlsPki::get();
  for (const std::string& key :
       {pki.good_key, pki.wrong_host_key, pki.expired_key, pki.self_signed_key}) {
    struct stat info {};
    ASSERT_EQ(stat(key.c_str(), &info), 0) << key;
    EXPECT_EQ(info.st_mode & 0777, 0600u) << key;
  }
  for (const std::string& cert :
       {pki.ca_cert, pki.good_cert, pki.wrong_host_cert, pki.expired_cert, pki.self_signed_cert}) {
    X509* parsed = read_cert(cert);
    EXPECT_NE(parsed, nullptr) << cert;
    X509_free(parsed);
  }
}

TEST(TlsTestPki, CaIsCaAndLeavesAreNot) {
  const auto& pki = TlsPki::get();
  X509* ca = read_cert(pki.ca_cert);
  X509* leaf = read_cert(pki.good_cert);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_check_ca(ca), 1);
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_EQ(X509_check_issued(ca, leaf), X509_V_OK);
  EXPECT_EQ(X509_check_host(leaf, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
  EXPECT_EQ(X509_check_host(leaf, "wrong.example.invalid", 0, 0, nullptr), 0);
  // Fresh serials: two certs from the same run must differ.
  X509* other = read_cert(pki.wrong_host_cert);
  ASSERT_NE(other, nullptr);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(other)), 0);
  X509_free(other);
  X509_free(leaf);
  X509_free(ca);
}

TEST(TlsTestPki, RegeneratesIntoNewDirectoryWithFreshKeys) {
  const auto& pki = TlsPki::get();
  const GeneratedPki second = generate_test_pki(pki.dir + "/second/nested");
  EXPECT_EQ(second.dir, pki.dir + "/second/nested");
  EXPECT_EQ(second.ca_cert, second.dir + "/ca.pem");
  X509* first_ca = read_cert(pki.ca_cert);
  X509* second_ca = read_cert(second.ca_cert);
  ASSERT_NE(first_ca, nullptr);
  ASSERT_NE(second_ca, nullptr);
  EXPECT_NE(X509_cmp(first_ca, second_ca), 0);
  X509_free(first_ca);
  X509_free(second_ca);
  // Certs from one CA are not trusted by a client that only knows the other.
  auto other_client = Context::client({.ca_file = second.ca_cert});
  Pair pair = connect(other_client, good_server_context(), "localhost");
  EXPECT_EQ(pair.client->failure(), Failure::Verify);
}

TEST(TlsTestPki, UnwritableDirectoryThrows) {
  const auto& pki = TlsPki::get();
  // A regular file where the directory should be.
  EXPECT_THROW(generate_test_pki(pki.ca_cert + "/sub"), TlsError);
}

}  // namespace
}  // namespace portrelay::tls
