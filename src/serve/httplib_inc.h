// cpp-httplib as Debian built libcpp-httplib.so: the header's class layouts depend on these macros
// (Request has an SSL* member with OpenSSL support), so every translation unit that includes
// httplib.h, the tests' clients too, must see the same ones as the library (pkg-config --cflags
// cpp-httplib). Include this instead of <httplib.h>.
#pragma once

#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT 1
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT 1
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT 1
#endif

#include <httplib.h>
