# Installing and packaging modernbert.cpp as a library (#17 item 1). `cmake --install build
# [--prefix P]` puts in place:
#
#   bin/modernbert                               the CLI (statically linked against the layers)
#   lib/libmodernbert.so.<version>, .so.<SOVERSION>, .so   the whole library, shared
#   lib/libmodernbert.a                          the whole library, static
#   include/modernbert/*.h, include/modernbert.h the public C++ headers and the C API
#   lib/cmake/modernbert/                        find_package(modernbert): modernbert::modernbert
#                                                (shared), modernbert::modernbert_static
#   lib/pkgconfig/modernbert.pc                  pkg-config --cflags --libs [--static] modernbert
#
# and `cpack -G DEB` (or `cmake --build build --target package`) builds a .deb of the same files.
# docs/library.md is the user's guide; tests/package/test_install.sh installs, builds the examples
# against the installed files both ways and checks the .deb.
#
# How the two libraries are made. The layers (cmake/layers.cmake) stay STATIC libraries: the CLI,
# the tests, the layering tests and the ASan/UBSan copies link them as before. libmodernbert.so and
# libmodernbert.a are built from the same object files ($<TARGET_OBJECTS:layer> of every layer
# that has sources), so nothing is compiled twice (the whole build is -fPIC). Objects rather than
# $<LINK_LIBRARY:WHOLE_ARCHIVE,...> of the layer archives: each layer links the layers below it
# without a feature, and CMake refuses a library named both with and without WHOLE_ARCHIVE in one
# link; objects also give the static archive, which a link feature cannot. The new targets link no
# layer target, so their exported link interfaces name only the third-party libraries.
#
# Symbol visibility: default (every symbol of the library is exported). The public C++ headers
# expose classes from every layer (Model, Tokenizer, Config, Error and its subclasses with their
# vtables and typeinfo, which must be exported for `catch (const modernbert::Error&)` to work in a
# program), and the internal code lives in the same namespace, so a useful export list would need
# an export macro on each public declaration in headers owned by every layer. The C API
# (modernbert.h) is what has a stable ABI; the C++ ABI is that of this version (SOVERSION below).
# -Wl,--no-undefined makes a missing dependency a link error of the library, not of its users.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(MODERNBERT_INSTALL "Define install rules, the CMake/pkg-config package and CPack" ON)
if(NOT MODERNBERT_INSTALL)
  return()
endif()

# 0.x releases may change the ABI with every minor version: SOVERSION 0.<minor> (libmodernbert.so.0.1);
# from 1.0 on, the major version.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(MB_SOVERSION 0.${PROJECT_VERSION_MINOR})
else()
  set(MB_SOVERSION ${PROJECT_VERSION_MAJOR})
endif()

set(MB_LIB_OBJECTS "")
foreach(layer ${MB_LAYERS})
  # The MPI world stays in the CLI: the library and its users need no MPI (communicator.h is the
  # interface; single_process() is in core).
  if(layer STREQUAL "dist")
    continue()
  endif()
  get_target_property(type modernbert_${layer} TYPE)
  if(type STREQUAL "STATIC_LIBRARY")
    list(APPEND MB_LIB_OBJECTS $<TARGET_OBJECTS:modernbert_${layer}>)
  endif()
endforeach()

# What the layers link (cmake/layers.cmake), for the new targets' own links. oneDNN as an imported
# target: its path then travels as a name that modernbertConfig.cmake finds again.
set(MB_LIB_DEPS PkgConfig::OPENBLAS ICU::uc PkgConfig::HTTPLIB Threads::Threads)
if(MB_HAVE_ONEDNN)
  add_library(mb_dnnl UNKNOWN IMPORTED)
  set_target_properties(mb_dnnl PROPERTIES IMPORTED_LOCATION ${DNNL_LIBRARY})
  list(APPEND MB_LIB_DEPS mb_dnnl OpenMP::OpenMP_CXX)
endif()

add_library(modernbert_shared SHARED ${MB_LIB_OBJECTS})
add_library(modernbert_static STATIC ${MB_LIB_OBJECTS})
set_target_properties(modernbert_shared PROPERTIES OUTPUT_NAME modernbert EXPORT_NAME modernbert
                      VERSION ${PROJECT_VERSION} SOVERSION ${MB_SOVERSION})
set_target_properties(modernbert_static PROPERTIES OUTPUT_NAME modernbert EXPORT_NAME modernbert_static)
foreach(t modernbert_shared modernbert_static)
  target_include_directories(${t} PUBLIC $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
                                         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${t} PUBLIC cxx_std_20)  # the headers are C++20 (modernbert.h is C)
  # The public headers include <nlohmann/json.hpp>.
  target_link_libraries(${t} PUBLIC nlohmann_json::nlohmann_json Threads::Threads)
  # BUILD_INTERFACE: in the build tree only; installed, the shared library's DT_NEEDED entries
  # carry them, and the static library's users get modernbert::static_deps (below).
  foreach(d ${MB_LIB_DEPS})
    target_link_libraries(${t} PRIVATE $<BUILD_INTERFACE:${d}>)
  endforeach()
endforeach()
if(NOT MODERNBERT_SANITIZE AND NOT MODERNBERT_FUZZ)
  # (A sanitized shared library leaves the sanitizer runtime to the executable.)
  target_link_options(modernbert_shared PRIVATE -Wl,--no-undefined)
endif()
# A user of the static library links what the layers link. Installed, that list is the target
# modernbert::static_deps, which modernbertConfig.cmake defines after finding the libraries (only
# then is modernbert::modernbert_static defined), so that a user of the shared library needs none
# of their development files.
target_link_libraries(modernbert_static INTERFACE $<INSTALL_INTERFACE:modernbert::static_deps>)

# ---- install ------------------------------------------------------------------------------------
set(MB_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/modernbert)
install(TARGETS modernbert RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS modernbert_shared EXPORT modernbertTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS modernbert_static EXPORT modernbertStaticTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
# Every public header (include/modernbert/*.h) and the C API header include/modernbert.h, if present.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(EXPORT modernbertTargets NAMESPACE modernbert:: DESTINATION ${MB_CMAKE_DIR})
install(EXPORT modernbertStaticTargets NAMESPACE modernbert:: DESTINATION ${MB_CMAKE_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/modernbertConfig.cmake.in
  ${CMAKE_BINARY_DIR}/package/modernbertConfig.cmake INSTALL_DESTINATION ${MB_CMAKE_DIR})
# Same minor version while 0.x (as the SOVERSION).
write_basic_package_version_file(${CMAKE_BINARY_DIR}/package/modernbertConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/package/modernbertConfig.cmake
              ${CMAKE_BINARY_DIR}/package/modernbertConfigVersion.cmake DESTINATION ${MB_CMAKE_DIR})

# pkg-config. Relocatable: prefix is found from the .pc file's own place (${pcfiledir}), so
# `cmake --install build --prefix P` and the .deb both get a correct file. Requires: the headers'
# nlohmann_json. The static link's libraries go to Libs.private as plain flags rather than to
# Requires.private, because pkg-config --cflags fails when any Requires.private package is missing,
# and a user of the shared library should not need OpenBLAS', ICU's, cpp-httplib's dev packages.
file(RELATIVE_PATH MB_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" MB_PC_TO_PREFIX "${MB_PC_TO_PREFIX}")
set(MB_PC_LIBS_PRIVATE "-lopenblas -licuuc -licudata -lcpp-httplib")
if(MB_HAVE_ONEDNN)
  string(APPEND MB_PC_LIBS_PRIVATE " -ldnnl ${OpenMP_CXX_FLAGS}")
endif()
string(APPEND MB_PC_LIBS_PRIVATE " -pthread -lstdc++ -lm")  # -lstdc++: a C program linking the .a
configure_file(${CMAKE_SOURCE_DIR}/cmake/modernbert.pc.in ${CMAKE_BINARY_DIR}/package/modernbert.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/package/modernbert.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---- CPack: a .deb ------------------------------------------------------------------------------
# One package with the CLI, both libraries and the development files (a runtime / -dev split would
# also split the Python module's files, which install themselves). Depends: the shared libraries
# the binaries need, found by dpkg-shlibdeps (dpkg-dev), plus nlohmann-json3-dev for the headers;
# the static link's -dev packages are Suggests. A -DMODERNBERT_NATIVE=ON (default) build runs only
# on CPUs with the build machine's extensions; build packages for others with
# -DMODERNBERT_NATIVE=OFF (x86-64-v3).
set(MODERNBERT_PACKAGE_MAINTAINER "modernbert.cpp developers <modernbert-cpp@users.noreply.github.com>"
    CACHE STRING "Maintainer field of the .deb")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME modernbert)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "modernbert.cpp")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "ModernBERT encoder engine in C++: CLI, C/C++ library, HTTP server")
set(CPACK_PACKAGE_DESCRIPTION
    "modernbert.cpp runs, trains and serves ModernBERT encoders (Hugging Face checkpoints) without\
 Python: embeddings, classification, fill-mask, reranking, ColBERT. This package holds the\
 modernbert command, libmodernbert (shared and static), its C++ and C headers, a CMake package\
 (find_package(modernbert)) and a pkg-config file.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${MODERNBERT_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # modernbert_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)  # a shlibs file and the ldconfig trigger
set(CPACK_DEBIAN_PACKAGE_DEPENDS "nlohmann-json3-dev (>= 3.10)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libopenblas-dev, libicu-dev, libcpp-httplib-dev, libdnnl-dev")
# The Python module (python/, installed when MODERNBERT_PYTHON is on) imports into Debian's python3
# and returns NumPy arrays.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3 (>= 3.11), python3-numpy")
include(CPack)
