/*
 * closing_server.hpp: ClosingServer, a raw-socket HTTP/1.1 server for the
 * unit tests of libcurl's silent re-send (call_many_test.cpp,
 * kept_alive_transfers_test.cpp).
 */
#ifndef VS_CLOSING_SERVER_HPP
#define VS_CLOSING_SERVER_HPP

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <thread>
#include <vector>

/*
 * A raw HTTP/1.1 server: on every connection it answers the first request
 * (keep-alive), then reads the second request on that same connection and
 * closes it without a reply, the way a server that timed the idle
 * connection out at the wrong moment looks to the client. It counts the
 * requests it read and the connection each came on.
 */
class ClosingServer
{
public:
	/*
	 * Listens on an ephemeral port of 127.0.0.1 and accepts from a thread.
	 * With refuse_after_close, it stops listening (new connects are
	 * refused) before it closes a connection on its second request. reply
	 * is the whole HTTP response to first requests (it must keep the
	 * connection alive); "" answers a TikTok JSON envelope.
	 */
	explicit ClosingServer(bool refuse_after_close = false, std::string reply = "")
		: refuse_after_close_(refuse_after_close), reply_(std::move(reply))
	{
		listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
		sockaddr_in addr{};
		socklen_t	len = sizeof addr;

		addr.sin_family = AF_INET;
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		addr.sin_port = 0;
		bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
		listen(listen_fd_, 16);
		getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len);
		base_url_ = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
		acceptor_ = std::thread([this] { accept_loop(); });
	}

	/* Stops accepting and serving, and joins every thread. */
	~ClosingServer()
	{
		stop_.store(true);
		acceptor_.join();
		for (std::thread &t : connections_)
			t.join();
		close(listen_fd_);
	}

	/* "http://127.0.0.1:<port>". */
	const std::string &base_url() const { return base_url_; }

	/* Requests read so far. */
	int requests() const { return requests_.load(); }

	/* The connection number (1, 2, ...) request i (0-based) came on. */
	std::vector<int> request_connections()
	{
		std::lock_guard<std::mutex> lock(mutex_);
		return request_conn_;
	}

private:
	/* Waits until fd is readable or the server stops; false when stopping. */
	bool wait_readable(int fd)
	{
		while (!stop_.load())
		{
			pollfd		p{fd, POLLIN, 0};

			if (poll(&p, 1, 50) > 0)
				return true;
		}
		return false;
	}

	/* Accepts connections, one thread each. */
	void accept_loop()
	{
		int			conn_no = 0;

		while (wait_readable(listen_fd_))
		{
			int			fd = accept(listen_fd_, nullptr, nullptr);

			if (fd < 0)
			{
				/* No longer listening (refuse_after_close): wait for the end. */
				std::this_thread::sleep_for(std::chrono::milliseconds(10));
				continue;
			}
			conn_no++;
			connections_.emplace_back([this, fd, conn_no] { serve(fd, conn_no); });
		}
	}

	/* Reads one whole request (headers and Content-Length body) into buf's front; false on EOF. */
	bool read_request(int fd, std::string &buf)
	{
		char		chunk[4096];

		for (;;)
		{
			std::size_t head_end = buf.find("\r\n\r\n");

			if (head_end != std::string::npos)
			{
				std::size_t length = 0;
				std::size_t at = buf.find("Content-Length: ");

				if (at != std::string::npos && at < head_end)
					length = std::strtoul(buf.c_str() + at + 16, nullptr, 10);
				if (buf.size() >= head_end + 4 + length)
				{
					buf.erase(0, head_end + 4 + length);
					return true;
				}
			}
			if (!wait_readable(fd))
				return false;
			ssize_t		got = read(fd, chunk, sizeof chunk);

			if (got <= 0)
				return false;
			buf.append(chunk, static_cast<std::size_t>(got));
		}
	}

	/* Serves one connection: answers its first request, closes on its second. */
	void serve(int fd, int conn_no)
	{
		std::string buf;

		for (int served = 0; read_request(fd, buf); served++)
		{
			{
				std::lock_guard<std::mutex> lock(mutex_);
				request_conn_.push_back(conn_no);
			}
			requests_++;
			if (served > 0)
			{
				/* Shut down, a listening socket refuses new connections (Linux). */
				if (refuse_after_close_)
					shutdown(listen_fd_, SHUT_RDWR);
				break;			/* the second request: close without a reply */
			}
			std::string body = R"({"data":{"publish_id":"raw-pub-)" + std::to_string(conn_no) +
				R"("},"error":{"code":"ok","message":"","log_id":"RAW"}})";
			std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				"Connection: keep-alive\r\nContent-Length: " + std::to_string(body.size()) +
				"\r\n\r\n" + body;

			if (!reply_.empty())
				reply = reply_;

			if (write(fd, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size()))
				break;
		}
		close(fd);
	}

	bool		refuse_after_close_;
	std::string reply_;
	int			listen_fd_ = -1;
	std::string base_url_;
	std::thread acceptor_;
	std::vector<std::thread> connections_;	/* only the acceptor touches it until the destructor */
	std::atomic<bool> stop_{false};
	std::atomic<int> requests_{0};
	std::mutex	mutex_;
	std::vector<int> request_conn_;
};

#endif
