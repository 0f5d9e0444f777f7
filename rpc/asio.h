// The one place Boost.Asio is included from, with the settings Heka needs
// (Boost 1.74 + g++ 12: <utility> before Asio; C++20 coroutines).
#pragma once

#include <utility>  // must precede Asio with g++ 12

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace heka::rpc {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
template <typename T>
using awaitable = asio::awaitable<T>;
}  // namespace heka::rpc
