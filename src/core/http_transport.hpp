/*
 * http_transport.hpp: one HTTPS request (POST or GET) through libcurl, with
 * a per-process reused handle so keep-alive connections to TikTok survive
 * between calls.
 */
#ifndef VS_HTTP_TRANSPORT_HPP
#define VS_HTTP_TRANSPORT_HPP

#include <string>

namespace vibescaling {

/* What to send and how long to wait. */
struct HttpRequest
{
	std::string url;
	bool		get = false;		/* GET without a body; else POST body */
	bool		send_bearer = true; /* "Authorization: Bearer <bearer_token>" */
	std::string bearer_token;		/* must hold no control characters */
	std::string content_type = "application/json; charset=UTF-8";	/* POST only */
	std::string body;				/* POST only */
	long		connect_timeout_ms = 0;
	long		request_timeout_ms = 0;
	int			(*should_abort) (void) = nullptr;	/* polled; nonzero aborts */

	/*
	 * Open a new connection instead of reusing a kept-alive one. libcurl
	 * silently re-sends a request whose reused connection closed before
	 * any reply byte; for a call that creates a post that would be a
	 * duplicate post, so those calls set this.
	 */
	bool		fresh_connection = false;
};

/* What came back, or why nothing usable did. */
struct HttpReply
{
	bool		completed = false;	/* a whole HTTP reply was read */
	long		http_status = 0;	/* 0 when no status line arrived */
	std::string body;				/* when completed */
	std::string error_code;			/* when !completed: timeout, aborted, ... */
	std::string error_message;		/* when !completed; never holds the token */
	bool		outcome_unknown = false;	/* the request may have reached the server */
	double		duration_ms = 0.0;
};

/*
 * POSTs req.body to req.url (or GETs it). Sets *perform_started just before
 * the request can leave the process. Throws std::bad_alloc when memory runs
 * out, std::invalid_argument for a token or content type with control
 * characters.
 */
HttpReply http_send(const HttpRequest &req, bool *perform_started);

}								/* namespace vibescaling */

#endif
