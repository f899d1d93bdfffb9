/*
 * retry_after.cpp: Retry-After values (delta-seconds or an HTTP-date) as
 * seconds to wait. The grammar is RFC 9110's (sections 5.6.7 and 10.2.3),
 * read strictly: HTTP-date is case-sensitive and has fixed spacing, so
 * anything that does not match one of its three forms exactly is garbage
 * (-1) rather than a guess.
 */
#include "retry_after.hpp"

#include <cstring>

namespace vibescaling {

namespace {

const char *const kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
								 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
const char *const kShortDays[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
const char *const kLongDays[7] = {"Monday", "Tuesday", "Wednesday", "Thursday",
								  "Friday", "Saturday", "Sunday"};

/* A forward-only reader over [p, end); every method advances only on success. */
class Scanner
{
public:
	Scanner(const char *p, const char *end) noexcept : p_(p), end_(end) {}

	/* Consumes the exact text s. */
	bool literal(const char *s) noexcept
	{
		std::size_t n = std::strlen(s);

		if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, s, n) != 0)
			return false;
		p_ += n;
		return true;
	}

	/* Consumes exactly n ASCII digits into *out. */
	bool digits(int n, int *out) noexcept
	{
		if (end_ - p_ < n)
			return false;
		int			v = 0;

		for (int i = 0; i < n; i++)
		{
			if (p_[i] < '0' || p_[i] > '9')
				return false;
			v = v * 10 + (p_[i] - '0');
		}
		p_ += n;
		*out = v;
		return true;
	}

	/* Consumes one of names (exact, case-sensitive); its index, or -1. */
	int name(const char *const *names, int count) noexcept
	{
		for (int i = 0; i < count; i++)
			if (literal(names[i]))
				return i;
		return -1;
	}

	/* "HH:MM:SS" into seconds of the day (a leap second, :60, is allowed). */
	bool time_of_day(int *seconds) noexcept
	{
		int			h,
					m,
					s;

		if (!digits(2, &h) || !literal(":") || !digits(2, &m) || !literal(":") || !digits(2, &s))
			return false;
		if (h > 23 || m > 59 || s > 60)
			return false;
		*seconds = h * 3600 + m * 60 + s;
		return true;
	}

	bool at_end() const noexcept { return p_ == end_; }

private:
	const char *p_;
	const char *end_;
};

/* True for a Gregorian leap year. */
bool
is_leap(int year) noexcept
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* Days in month (0-based) of year. */
int
days_in_month(int year, int month) noexcept
{
	static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return month == 1 && is_leap(year) ? 29 : kDays[month];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
long long
days_from_civil(long long y, int m, int d) noexcept
{
	y -= m <= 2 ? 1 : 0;
	const long long era = (y >= 0 ? y : y - 399) / 400;
	const long long yoe = y - era * 400;
	const long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

/* The UTC calendar year of now. */
int
current_year(std::time_t now) noexcept
{
	std::tm		tm_now;

	if (gmtime_r(&now, &tm_now) == nullptr)
		return 1970;
	return tm_now.tm_year + 1900;
}

/* A calendar date and time of day (UTC), checked. */
struct DateTime
{
	int			year = 0;
	int			month = -1;		/* 0-based */
	int			day = 0;
	int			seconds = 0;	/* of the day */
};

/* Seconds since the epoch of a parsed date, or false when the date does not exist. */
bool
to_epoch(const DateTime &dt, long long *epoch) noexcept
{
	if (dt.month < 0 || dt.month > 11 || dt.day < 1 || dt.day > days_in_month(dt.year, dt.month))
		return false;
	*epoch = days_from_civil(dt.year, dt.month + 1, dt.day) * 86400LL + dt.seconds;
	return true;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
bool
parse_imf_fixdate(const char *p, const char *end, DateTime *dt) noexcept
{
	Scanner		s(p, end);

	return s.name(kShortDays, 7) >= 0 && s.literal(", ") && s.digits(2, &dt->day) &&
		s.literal(" ") && (dt->month = s.name(kMonths, 12)) >= 0 && s.literal(" ") &&
		s.digits(4, &dt->year) && s.literal(" ") && s.time_of_day(&dt->seconds) &&
		s.literal(" GMT") && s.at_end();
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit year). */
bool
parse_rfc850(const char *p, const char *end, std::time_t now, DateTime *dt) noexcept
{
	Scanner		s(p, end);
	int			yy;

	if (!(s.name(kLongDays, 7) >= 0 && s.literal(", ") && s.digits(2, &dt->day) &&
		  s.literal("-") && (dt->month = s.name(kMonths, 12)) >= 0 && s.literal("-") &&
		  s.digits(2, &yy) && s.literal(" ") && s.time_of_day(&dt->seconds) &&
		  s.literal(" GMT") && s.at_end()))
		return false;

	/* RFC 9110: a year more than 50 years ahead is the latest past one with those digits. */
	int			this_year = current_year(now);

	dt->year = this_year / 100 * 100 + yy;
	if (dt->year > this_year + 50)
		dt->year -= 100;
	return true;
}

/* asctime: "Sun Nov  6 08:49:37 1994" (day space-padded) or "Sun Nov 16 ...". */
bool
parse_asctime(const char *p, const char *end, DateTime *dt) noexcept
{
	Scanner		s(p, end);

	if (!(s.name(kShortDays, 7) >= 0 && s.literal(" ") &&
		  (dt->month = s.name(kMonths, 12)) >= 0 && s.literal(" ")))
		return false;
	if (!(s.literal(" ") ? s.digits(1, &dt->day) : s.digits(2, &dt->day)))
		return false;
	return s.literal(" ") && s.time_of_day(&dt->seconds) && s.literal(" ") &&
		s.digits(4, &dt->year) && s.at_end();
}

/* delta-seconds: 1*DIGIT, saturating at kMaxRetryAfterSeconds; -1 when not that. */
long
parse_delta_seconds(const char *p, const char *end) noexcept
{
	if (p == end)
		return -1;
	long long	v = 0;

	for (; p < end; p++)
	{
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > kMaxRetryAfterSeconds)
			v = kMaxRetryAfterSeconds + 1LL;	/* stays above the cap, never overflows */
	}
	return v > kMaxRetryAfterSeconds ? kMaxRetryAfterSeconds : static_cast<long>(v);
}

}								/* namespace */

/* Seconds to wait from a Retry-After value; see the header. */
long
retry_after_seconds(const std::string &value, std::time_t now) noexcept
{
	const char *p = value.data();
	const char *end = p + value.size();

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (p == end)
		return -1;
	if (*p >= '0' && *p <= '9')
		return parse_delta_seconds(p, end);

	DateTime	dt;
	long long	when;

	if (!(parse_imf_fixdate(p, end, &dt) || (dt = DateTime(), parse_rfc850(p, end, now, &dt)) ||
		  (dt = DateTime(), parse_asctime(p, end, &dt))))
		return -1;
	if (!to_epoch(dt, &when))
		return -1;

	long long	wait = when - static_cast<long long>(now);

	if (wait < 0)
		return 0;
	return wait > kMaxRetryAfterSeconds ? kMaxRetryAfterSeconds : static_cast<long>(wait);
}

}								/* namespace vibescaling */
