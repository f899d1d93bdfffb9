/*
 * kept_alive_transfers_test.cpp: chunk PUTs (vs_put_chunk) and video source
 * downloads (vs_probe_source, vs_fetch_range) on kept-alive connections:
 * a video's requests share one connection, and libcurl never re-sends one
 * by itself over a connection that died (a chunk PUT then fails as a
 * transport error for the caller to log and retry; a source GET is sent
 * once more on a fresh connection).
 */
#include "test_support.hpp"
#include "closing_server.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

/*
 * A keep-alive HTTP/1.1 server on 127.0.0.1: PUT /upload answers a chunk
 * (206, or 201 for the last, with Content-Range "bytes 0-LAST/TOTAL"),
 * GET /video answers a Range of a 64 KiB MP4-looking file with 206. It
 * records the client port of every request: one port, one connection.
 */
class KeepAliveServer
{
public:
	KeepAliveServer()
	{
		server_.set_keep_alive_max_count(100);
		server_.set_keep_alive_timeout(1);	/* stop() waits for idle connections this long */
		server_.Put("/upload", [this](const httplib::Request &req, httplib::Response &res) {
			record(req);
			std::string range = req.get_header_value("Content-Range");	/* bytes F-L/T */
			std::size_t dash = range.find('-');
			std::size_t slash = range.find('/');
			std::string last = range.substr(dash + 1, slash - dash - 1);
			std::string total = range.substr(slash + 1);

			res.status = std::stoll(last) + 1 == std::stoll(total) ? 201 : 206;
			res.set_header("Content-Range", "bytes 0-" + last + "/" + total);
		});
		server_.Get("/video", [this](const httplib::Request &req, httplib::Response &res) {
			record(req);
			static const std::string file = std::string("\x00\x00\x00\x20" "ftypisom", 12) + std::string(65536, 'v');

			res.set_content(file, "video/mp4");	/* httplib answers the Range with 206 */
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	~KeepAliveServer()
	{
		server_.stop();
		thread_.join();
	}

	/* "http://127.0.0.1:<port><path>". */
	std::string url(const std::string &path) const
	{
		return "http://127.0.0.1:" + std::to_string(port_) + path;
	}

	/* The client ports seen, one per request. */
	std::vector<int> ports()
	{
		std::lock_guard<std::mutex> lock(mutex_);
		return ports_;
	}

private:
	void record(const httplib::Request &req)
	{
		std::lock_guard<std::mutex> lock(mutex_);
		ports_.push_back(req.remote_port);
	}

	httplib::Server server_;
	int			port_ = 0;
	std::thread thread_;
	std::mutex	mutex_;
	std::vector<int> ports_;
};

/* HTTP options for chunk PUTs and source downloads from 127.0.0.1. */
vs_http_options
options()
{
	vs_http_options o{};

	o.base_url = "";
	o.connect_timeout_ms = 2000;
	o.request_timeout_ms = 5000;
	o.source_allowed_networks = "127.0.0.1/32";
	o.source_connect_timeout_ms = 2000;
	o.source_stall_timeout_ms = 5000;
	return o;
}

/* The pool counters now. */
vs_pool_stats
stats()
{
	vs_pool_stats s;

	vs_get_pool_stats(&s);
	return s;
}

/* PUTs bytes [first, first + length) of a total-byte video to url. */
void
put(const vs_http_options &opt, const std::string &url, long long first, long long length, long long total,
	ScopedResult &res)
{
	std::string data(static_cast<std::size_t>(length), 'v');
	vs_chunk_put chunk = {url.c_str(), "video/mp4", first, length, total, data.data()};

	vs_put_chunk(&opt, &chunk, &res.r);
}

/* Fetches bytes [0, 4) of url. */
void
fetch4(const vs_http_options &opt, const std::string &url, ScopedResult &res)
{
	char		buf[4];

	vs_fetch_range(&opt, url.c_str(), 0, 4, buf, nullptr, &res.r);
}

}								/* namespace */

// A video's chunk PUTs go one after another over one connection.
TEST(KeptAliveTransfers, ChunkPutsShareOneConnection)
{
	KeepAliveServer server;
	vs_http_options opt = options();
	vs_pool_stats s0 = stats();

	for (int i = 0; i < 3; i++)
	{
		ScopedResult r;

		put(opt, server.url("/upload?upload_token=t"), i * 100, 100, 300, r);
		ASSERT_EQ(r->ok, 1) << r->error_code << ": " << r->error_message;
	}
	std::vector<int> ports = server.ports();

	ASSERT_EQ(ports.size(), 3u);
	EXPECT_EQ(std::set<int>(ports.begin(), ports.end()).size(), 1u);

	vs_pool_stats s1 = stats();

	EXPECT_EQ(s1.transfers - s0.transfers, 3);
	EXPECT_EQ(s1.connections_opened - s0.connections_opened, 1);
	EXPECT_EQ(s1.connections_reused - s0.connections_reused, 2);
}

// A video source's probe and range GETs share one connection too.
TEST(KeptAliveTransfers, SourceRangesShareOneConnection)
{
	KeepAliveServer server;
	vs_http_options opt = options();

	{
		ScopedResult p;

		vs_probe_source(&opt, server.url("/video").c_str(), &p.r);
		ASSERT_EQ(p->ok, 1) << p->error_code << ": " << p->error_message;
	}
	for (int i = 0; i < 2; i++)
	{
		ScopedResult f;

		fetch4(opt, server.url("/video"), f);
		ASSERT_EQ(f->ok, 1) << f->error_code << ": " << f->error_message;
	}
	std::vector<int> ports = server.ports();

	ASSERT_EQ(ports.size(), 3u);
	EXPECT_EQ(std::set<int>(ports.begin(), ports.end()).size(), 1u);
}

/*
 * The kept-alive connection dies under the second chunk PUT (the server
 * reads it, then closes without a reply): libcurl would re-send it on a new
 * connection; it must not. The PUT fails as a transport error of unknown
 * outcome, which the caller logs and retries (a retryable failure).
 */
TEST(KeptAliveTransfers, ChunkPutNeverResentSilently)
{
	ClosingServer server(false, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/300\r\n"
						 "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n");
	vs_http_options opt = options();
	std::string url = server.base_url() + "/upload?upload_token=t";

	{
		ScopedResult first;

		put(opt, url, 0, 100, 300, first);
		ASSERT_EQ(first->ok, 1) << first->error_code << ": " << first->error_message;
	}
	{
		ScopedResult second;

		put(opt, url, 0, 100, 300, second);
		EXPECT_EQ(second->ok, 0);
		EXPECT_STREQ(second->error_code, "transport_error");
		EXPECT_EQ(second->outcome_unknown, 1);
		EXPECT_EQ(second->retryable, 1);
		EXPECT_NE(std::string(second->error_message).find("not re-sent"), std::string::npos)
			<< second->error_message;
	}
	/* Give a (wrong) re-send time to arrive: exactly 2 requests, no third. */
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	EXPECT_EQ(server.requests(), 2);
	{
		ScopedResult third;

		put(opt, url, 0, 100, 300, third);
		ASSERT_EQ(third->ok, 1) << third->error_code << ": " << third->error_message;
	}
	std::vector<int> conns = server.request_connections();

	ASSERT_EQ(conns.size(), 3u);
	EXPECT_EQ(conns[1], 1);		/* the second PUT did reuse the first connection */
	EXPECT_NE(conns[2], 1);		/* the third came on a new one */
}

/*
 * The same for a source GET, which changes nothing at the source: the
 * extension (not libcurl behind its back) sends it once more, on a fresh
 * connection, and the download goes on.
 */
TEST(KeptAliveTransfers, SourceGetSentAgainOnFreshConnection)
{
	ClosingServer server(false, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/8\r\n"
						 "Content-Length: 4\r\nConnection: keep-alive\r\n\r\n" +
						 std::string("\x00\x00\x00\x08", 4));
	vs_http_options opt = options();
	std::string url = server.base_url() + "/video";

	for (int i = 0; i < 2; i++)
	{
		ScopedResult f;

		fetch4(opt, url, f);
		ASSERT_EQ(f->ok, 1) << i << ": " << f->error_code << ": " << f->error_message;
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	std::vector<int> conns = server.request_connections();

	ASSERT_EQ(conns.size(), 3u);
	EXPECT_EQ(conns[0], 1);
	EXPECT_EQ(conns[1], 1);		/* reused, died under the request */
	/* Sent once more, on a fresh connection (libcurl may have opened one for its blocked re-send). */
	EXPECT_GT(conns[2], 1);
}
