/*
 * chunk_upload_test.cpp: vs_put_chunk against an in-process cpp-httplib
 * upload server on 127.0.0.1 (headers, 206/201, error statuses, redaction
 * of the upload URL, a 64 KiB body, timeouts).
 */
#include "test_support.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <regex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char kUploadToken[] = "UPTOKEN-s3cr3t-0123456789abcdef";

/* What the server saw of one PUT. */
struct SeenPut
{
	std::string method;
	std::string path;
	std::string upload_token;
	std::string content_range;
	std::string content_length;
	std::string content_type;
	bool		has_authorization;
	bool		has_expect;
	std::string expect;
	std::string body;
};

/*
 * A fake TikTok upload endpoint: PUT /upload/<behaviour>?upload_token=..
 * answers by behaviour: "partial" 206 and "done" 201 (with Content-Range
 * "bytes 0-LAST/TOTAL" from the request), "norange" 206 without one,
 * "s<NNN>" that status with an envelope error, "html502" an HTML page,
 * "echo" a 403 whose message quotes the whole request target and token,
 * "slow" a late 206.
 */
class FakeUpload
{
public:
	FakeUpload()
	{
		server_.set_keep_alive_max_count(1);
		server_.Put(R"(/upload/(\w+))", [this](const httplib::Request &req, httplib::Response &res) {
			handle(req, res);
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		base_ = "http://127.0.0.1:" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	~FakeUpload()
	{
		release_.store(true);
		server_.stop();
		thread_.join();
	}

	/* The upload URL for a behaviour, with the secret token in its query string. */
	std::string url(const std::string &behaviour) const
	{
		return base_ + "/upload/" + behaviour + "?upload_token=" + kUploadToken + "&v=2";
	}

	/* A copy of the PUTs seen so far. */
	std::vector<SeenPut> seen()
	{
		std::lock_guard<std::mutex> lock(mutex_);
		return seen_;
	}

private:
	/* Records the PUT and answers by behaviour. */
	void handle(const httplib::Request &req, httplib::Response &res)
	{
		std::string behaviour = req.matches[1];
		std::string range = req.get_header_value("Content-Range");

		{
			std::lock_guard<std::mutex> lock(mutex_);
			seen_.push_back({req.method, req.path, req.get_param_value("upload_token"), range,
							 req.get_header_value("Content-Length"), req.get_header_value("Content-Type"),
							 req.has_header("Authorization"), req.has_header("Expect"),
							 req.get_header_value("Expect"), req.body});
		}

		std::smatch m;
		std::string progress;

		if (std::regex_match(range, m, std::regex(R"(bytes (\d+)-(\d+)/(\d+))")))
			progress = "bytes 0-" + m[2].str() + "/" + m[3].str();

		if (behaviour == "partial" || behaviour == "done" || behaviour == "slow")
		{
			if (behaviour == "slow")
			{
				auto deadline = Clock::now() + std::chrono::seconds(5);

				while (!release_.load() && Clock::now() < deadline)
					std::this_thread::sleep_for(std::chrono::milliseconds(10));
			}
			res.status = behaviour == "done" ? 201 : 206;
			res.set_header("Content-Range", progress);
			if (behaviour == "done")
				res.set_content(R"({"data":{},"error":{"code":"ok","message":"","log_id":"LOG-PUT"}})",
								"application/json");
		}
		else if (behaviour == "norange")
			res.status = 206;
		else if (behaviour == "html502")
		{
			res.status = 502;
			res.set_content("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html");
		}
		else if (behaviour == "echo")
		{
			std::string token = req.get_param_value("upload_token");

			res.status = 403;
			res.set_content(R"({"data":{},"error":{"code":"upload_url_expired","message":"expired: )" +
							req.path + "?upload_token=" + token + "&v=2 token " + token +
							R"(","log_id":"LOG-ECHO"}})",
							"application/json");
		}
		else if (behaviour.size() == 4 && behaviour[0] == 's')
		{
			res.status = std::stoi(behaviour.substr(1));
			res.set_content(R"({"data":{},"error":{"code":"some_code","message":"status )" +
							behaviour.substr(1) + R"(","log_id":"LOG-)" + behaviour.substr(1) + R"("}})",
							"application/json");
			if (res.status == 416)
				res.set_header("Content-Range", "bytes */" + (m.size() > 3 ? m[3].str() : std::string("0")));
		}
		else
			res.status = 404;
	}

	httplib::Server server_;
	std::thread thread_;
	int			port_ = -1;
	std::string base_;
	std::atomic<bool> release_{false};
	std::mutex	mutex_;
	std::vector<SeenPut> seen_;
};

/* HTTP options with the given timeouts (base_url unused by vs_put_chunk). */
vs_http_options
options(long request_timeout_ms = 5000, int (*should_abort)(void) = nullptr)
{
	vs_http_options o{};

	o.base_url = "";
	o.connect_timeout_ms = 2000;
	o.request_timeout_ms = request_timeout_ms;
	o.should_abort = should_abort;
	return o;
}

/* A chunk of data for url (both must outlive the chunk). */
vs_chunk_put
chunk_for(const std::string &url, const std::string &data, long long first, long long total,
		  const char *type = "video/mp4")
{
	vs_chunk_put c;

	c.upload_url = url.c_str();
	c.content_type = type;
	c.first = first;
	c.length = static_cast<long long>(data.size());
	c.total = total;
	c.data = data.data();
	return c;
}

/* A TCP port on 127.0.0.1 with nothing listening (bound, then closed). */
int
closed_port()
{
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in addr{};
	socklen_t	len = sizeof addr;

	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
	getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
	close(fd);
	return ntohs(addr.sin_port);
}

/* Always asks to abort. */
int
abort_now(void)
{
	return 1;
}

/* Asserts that nothing in a result, or its JSON forms, mentions the upload token. */
void
expect_no_upload_token(vs_call_result &r)
{
	std::string result = take_text(vs_result_json(&r));
	std::string log = take_text(vs_dispatch_log_json(&r, "1", "2", "test", "chunk_put"));

	EXPECT_EQ(result.find("UPTOKEN"), std::string::npos) << result;
	EXPECT_EQ(result.find("upload_token="), std::string::npos) << result;
	EXPECT_EQ(log.find("UPTOKEN"), std::string::npos) << log;
	EXPECT_EQ(std::string(r.error_message).find("UPTOKEN"), std::string::npos) << r.error_message;
}

}								/* namespace */

// A middle chunk: exact headers, no Authorization or Expect, body intact; 206 with progress.
TEST(ChunkUpload, PartialExactHeaders)
{
	FakeUpload server;
	std::string url = server.url("partial");
	std::string data = "0123456789";
	vs_chunk_put chunk = chunk_for(url, data, 10, 35);
	vs_http_options opt = options();
	ScopedResult res;

	vs_put_chunk(&opt, &chunk, &res.r);
	EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_EQ(res->http_status, 206);
	EXPECT_STREQ(res->error_code, "ok");
	EXPECT_STREQ(res->error_message, "");
	EXPECT_STREQ(res->sqlstate, "00000");
	EXPECT_STREQ(res->data_json, R"({"complete":false,"uploaded_bytes":20})");
	EXPECT_STREQ(res->publish_id, "");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_EQ(res->outcome_unknown, 0);
	EXPECT_GT(res->duration_ms, 0.0);

	std::vector<SeenPut> seen = server.seen();

	ASSERT_EQ(seen.size(), 1u);
	EXPECT_EQ(seen[0].method, "PUT");
	EXPECT_EQ(seen[0].path, "/upload/partial");
	EXPECT_EQ(seen[0].upload_token, kUploadToken);	/* the URL is used whole */
	EXPECT_EQ(seen[0].content_range, "bytes 10-19/35");
	EXPECT_EQ(seen[0].content_length, "10");
	EXPECT_EQ(seen[0].content_type, "video/mp4");
	EXPECT_FALSE(seen[0].has_authorization);
	EXPECT_TRUE(!seen[0].has_expect || seen[0].expect.empty()) << seen[0].expect;
	EXPECT_EQ(seen[0].body, data);
}

// The last chunk: 201, complete, progress = total; the content type is passed through.
TEST(ChunkUpload, LastChunkCreated)
{
	FakeUpload server;
	std::string url = server.url("done");
	std::string data(15, 'z');

	for (const char *type : {"video/mp4", "video/quicktime", "video/webm"})
	{
		vs_chunk_put chunk = chunk_for(url, data, 20, 35, type);
		vs_http_options opt = options();
		ScopedResult res;

		vs_put_chunk(&opt, &chunk, &res.r);
		EXPECT_EQ(res->ok, 1) << res->error_message;
		EXPECT_EQ(res->http_status, 201);
		EXPECT_STREQ(res->data_json, R"({"complete":true,"uploaded_bytes":35})");
		EXPECT_STREQ(res->log_id, "LOG-PUT");
		EXPECT_EQ(server.seen().back().content_type, type);
		EXPECT_EQ(server.seen().back().content_range, "bytes 20-34/35");
	}
}

// A chunk over 1 MB (where curl would otherwise send "Expect: 100-continue"): no Expect, intact.
TEST(ChunkUpload, LargeChunkNoExpect)
{
	FakeUpload server;
	std::string url = server.url("partial");
	std::string data(2 * 1024 * 1024 + 3, 'm');

	data[0] = '\0';
	data[data.size() - 1] = '\xFF';
	vs_chunk_put chunk = chunk_for(url, data, 5, 10 * 1024 * 1024);
	vs_http_options opt = options();
	ScopedResult res;

	vs_put_chunk(&opt, &chunk, &res.r);
	ASSERT_EQ(res->ok, 1) << res->error_message;
	EXPECT_STREQ(res->data_json, R"({"complete":false,"uploaded_bytes":2097160})");

	std::vector<SeenPut> seen = server.seen();

	ASSERT_EQ(seen.size(), 1u);
	EXPECT_FALSE(seen[0].has_expect && !seen[0].expect.empty()) << seen[0].expect;
	EXPECT_EQ(seen[0].content_length, std::to_string(data.size()));
	EXPECT_EQ(seen[0].content_range, "bytes 5-2097159/10485760");
	EXPECT_TRUE(seen[0].body == data);
}

// A reply without Content-Range: uploaded_bytes -1, still ok.
TEST(ChunkUpload, NoContentRangeInReply)
{
	FakeUpload server;
	std::string url = server.url("norange");
	std::string data = "abc";
	vs_chunk_put chunk = chunk_for(url, data, 0, 3);
	vs_http_options opt = options();
	ScopedResult res;

	vs_put_chunk(&opt, &chunk, &res.r);
	EXPECT_EQ(res->ok, 1) << res->error_message;
	EXPECT_STREQ(res->data_json, R"({"complete":false,"uploaded_bytes":-1})");
}

// A 64 KiB chunk of every byte value (NULs included) arrives intact.
TEST(ChunkUpload, SixtyFourKiBIntact)
{
	FakeUpload server;
	std::string url = server.url("partial");
	std::string data(64 * 1024, '\0');

	for (std::size_t i = 0; i < data.size(); i++)
		data[i] = static_cast<char>((i * 7 + i / 256) & 0xFF);
	vs_chunk_put chunk = chunk_for(url, data, 0, 5 * 64 * 1024);
	vs_http_options opt = options();
	ScopedResult res;

	vs_put_chunk(&opt, &chunk, &res.r);
	ASSERT_EQ(res->ok, 1) << res->error_message;
	EXPECT_STREQ(res->data_json, R"({"complete":false,"uploaded_bytes":65536})");

	std::vector<SeenPut> seen = server.seen();

	ASSERT_EQ(seen.size(), 1u);
	EXPECT_EQ(seen[0].content_length, "65536");
	EXPECT_EQ(seen[0].content_range, "bytes 0-65535/327680");
	ASSERT_EQ(seen[0].body.size(), data.size());
	EXPECT_TRUE(seen[0].body == data);
}

// Each error status maps to its code, SQLSTATE and retry policy; TikTok's message is kept.
TEST(ChunkUpload, ErrorStatuses)
{
	struct Row
	{
		const char *behaviour;
		long		status;
		const char *code;
		const char *sqlstate;
		int			retryable;
	};
	const Row	rows[] = {
		{"s400", 400, "chunk_rejected", "22023", 0},
		{"s403", 403, "upload_url_expired", "55000", 0},
		{"s404", 404, "upload_not_found", "55000", 0},
		{"s416", 416, "range_mismatch", "55000", 0},
		{"s500", 500, "internal_error", "08000", 1},
		{"s503", 503, "internal_error", "08000", 1},
		{"s429", 429, "rate_limit_exceeded", "53000", 1},
		{"s409", 409, "chunk_rejected", "22023", 0},
		{"s200", 200, "bad_response", "08P01", 1},
	};
	FakeUpload server;
	std::string data = "0123456789";

	for (const Row &row : rows)
	{
		std::string url = server.url(row.behaviour);
		vs_chunk_put chunk = chunk_for(url, data, 0, 100);
		vs_http_options opt = options();
		ScopedResult res;

		vs_put_chunk(&opt, &chunk, &res.r);
		SCOPED_TRACE(row.behaviour);
		EXPECT_EQ(res->ok, 0);
		EXPECT_EQ(res->http_status, row.status);
		EXPECT_STREQ(res->error_code, row.code);
		EXPECT_STREQ(res->sqlstate, row.sqlstate);
		EXPECT_EQ(res->retryable, row.retryable);
		EXPECT_EQ(res->outcome_unknown, 0);
		EXPECT_STREQ(res->data_json, R"({"complete":false,"uploaded_bytes":-1})");
		EXPECT_EQ(std::string(res->log_id), std::string("LOG-") + (row.behaviour + 1));
		EXPECT_NE(std::string(res->error_message).find(std::to_string(row.status)), std::string::npos)
			<< res->error_message;
		EXPECT_NE(std::string(res->error_message).find("some_code: status"), std::string::npos)
			<< res->error_message;
		expect_no_upload_token(res.r);
	}
}

// An HTML 502 from a proxy: internal_error (retry this chunk), the page quoted.
TEST(ChunkUpload, Html502)
{
	FakeUpload server;
	std::string url = server.url("html502");
	std::string data = "x";
	vs_chunk_put chunk = chunk_for(url, data, 0, 1);
	vs_http_options opt = options();
	ScopedResult res;

	vs_put_chunk(&opt, &chunk, &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 502);
	EXPECT_STREQ(res->error_code, "internal_error");
	EXPECT_EQ(res->retryable, 1);
	EXPECT_NE(std::string(res->error_message).find("502 Bad Gateway"), std::string::npos) << res->error_message;
}

// A server echoing the upload URL and token: the query string never reaches error_message.
TEST(ChunkUpload, RedactsUploadUrl)
{
	FakeUpload server;
	std::string url = server.url("echo");
	std::string data = "x";
	vs_chunk_put chunk = chunk_for(url, data, 0, 1);
	vs_http_options opt = options();
	ScopedResult res;

	vs_put_chunk(&opt, &chunk, &res.r);
	EXPECT_STREQ(res->error_code, "upload_url_expired");
	EXPECT_STREQ(res->log_id, "LOG-ECHO");
	std::string msg = res->error_message;

	EXPECT_EQ(msg.find(kUploadToken), std::string::npos) << msg;
	EXPECT_EQ(msg.find("upload_token="), std::string::npos) << msg;
	EXPECT_NE(msg.find("/upload/echo?***"), std::string::npos) << msg;
	EXPECT_NE(msg.find("token ***"), std::string::npos) << msg;
	expect_no_upload_token(res.r);
}

// Nothing listening: connect_failed; the URL's token is not in the message.
TEST(ChunkUpload, ConnectRefused)
{
	std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) +
		"/upload/x?upload_token=" + kUploadToken;
	std::string data = "x";
	vs_chunk_put chunk = chunk_for(url, data, 0, 1);
	vs_http_options opt = options();
	ScopedResult res;

	vs_put_chunk(&opt, &chunk, &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 0);
	EXPECT_STREQ(res->error_code, "connect_failed");
	EXPECT_EQ(res->retryable, 1);
	EXPECT_EQ(res->outcome_unknown, 0);
	EXPECT_STREQ(res->data_json, "{}");
	expect_no_upload_token(res.r);
}

// A late reply: timeout within the limit; should_abort stops the PUT at once.
TEST(ChunkUpload, TimeoutAndAbort)
{
	FakeUpload server;
	std::string url = server.url("slow");
	std::string data(1000, 'q');
	vs_chunk_put chunk = chunk_for(url, data, 0, 1000);

	{
		vs_http_options opt = options(300);
		ScopedResult res;
		auto		start = Clock::now();

		vs_put_chunk(&opt, &chunk, &res.r);
		double		waited = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

		EXPECT_STREQ(res->error_code, "timeout");
		EXPECT_EQ(res->retryable, 1);
		EXPECT_EQ(res->outcome_unknown, 1);
		EXPECT_LT(waited, 1500.0);
		expect_no_upload_token(res.r);
	}
	{
		vs_http_options opt = options(10000, abort_now);
		ScopedResult res;
		auto		start = Clock::now();

		vs_put_chunk(&opt, &chunk, &res.r);
		double		waited = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

		EXPECT_STREQ(res->error_code, "aborted");
		EXPECT_STREQ(res->sqlstate, "57014");
		EXPECT_LT(waited, 1200.0);
	}
}

// Bad arguments are refused before sending, without quoting the URL.
TEST(ChunkUpload, RefusedBeforeSending)
{
	FakeUpload server;
	std::string url = server.url("partial");
	std::string data = "0123456789";
	vs_http_options opt = options();

	auto		refused = [&](vs_chunk_put c, const vs_http_options *o, const char *about) {
		ScopedResult res;

		vs_put_chunk(o, &c, &res.r);
		EXPECT_EQ(res->ok, 0) << about;
		EXPECT_STREQ(res->error_code, "invalid_param") << about;
		EXPECT_STREQ(res->sqlstate, "22023");
		EXPECT_EQ(res->http_status, 0);
		EXPECT_EQ(res->outcome_unknown, 0);
		EXPECT_NE(std::string(res->error_message).find(about), std::string::npos) << res->error_message;
		expect_no_upload_token(res.r);
	};

	vs_chunk_put good = chunk_for(url, data, 0, 10);
	vs_chunk_put c = good;

	c.content_type = "video/x-msvideo";
	refused(c, &opt, "content_type");
	c.content_type = nullptr;
	refused(c, &opt, "content_type");
	c = good;
	c.first = -1;
	refused(c, &opt, "range");
	c = good;
	c.first = 1;				/* 1 + 10 > 10 */
	refused(c, &opt, "range");
	c = good;
	c.length = 0;
	refused(c, &opt, "range");
	c = good;
	c.total = 4294967297LL;
	refused(c, &opt, "total");
	c = good;
	c.data = nullptr;
	refused(c, &opt, "data");

	std::string ftp = "ftp://127.0.0.1/upload?upload_token=" + std::string(kUploadToken);
	std::string crlf = url + "\r\nX-Evil: 1";

	c = good;
	c.upload_url = ftp.c_str();
	refused(c, &opt, "upload_url");
	c.upload_url = crlf.c_str();
	refused(c, &opt, "upload_url");
	c.upload_url = nullptr;
	refused(c, &opt, "upload_url");
	refused(good, nullptr, "options");
	{
		ScopedResult res;

		vs_put_chunk(&opt, nullptr, &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param");
	}
	vs_put_chunk(&opt, &good, nullptr);	/* no crash */
	EXPECT_EQ(server.seen().size(), 0u);
}
