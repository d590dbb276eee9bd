# The library's layers (#13 item 5): one target per layer, each built from its own folder, with the
# allowed edges as its link dependencies. Lower layers never see upper ones:
#
#   core       src/core/        error helpers, thread pool, rng, hash, the Communicator interface
#   dist       src/dist/        the job's world over MPI (the only layer linking MPI) -> core
#   io         src/io/          file formats (config.json, safetensors, token ids), atomic files -> core
#   kernels    src/kernels/**   all arithmetic on tensors (the only layer linking BLAS / oneDNN / OpenMP) -> core
#   tokenizer  src/tokenizer/   -> io, core
#   model      src/model/       weights, the encoder, loading a model directory -> kernels, io, core
#   train      src/train/       -> model, kernels, tokenizer, io, core
#   tasks      src/tasks/       evaluation, fine-tuning, inference tasks, batching -> everything below
#   serve      src/serve/       the HTTP server and its batching engine -> tasks and below (+ cpp-httplib)
#   capi       src/capi/        the C API (include/modernbert.h) over modernbert::Model -> tasks and below
#   cli        src/cli/         the executable -> everything
#
# A wrong-way #include fails to COMPILE, not only to link. Sources include "<layer>/x.h" (relative to
# src/) and "modernbert/x.h" (relative to include/), so handing a layer the whole of src/ and include/
# would let it include anything. Instead each layer gets one include root generated in the build tree,
#   ${MB_LAYER_INCLUDE}/<layer>/<layer>           -> symlink to src/<layer>
#   ${MB_LAYER_INCLUDE}/<layer>/modernbert/<h>    -> symlink to include/modernbert/<h>, for the public
#                                                    headers that belong to the layer (map below)
# as a PUBLIC include directory. A layer links the layers it may use PUBLIC, so it compiles with its
# own root and the roots of exactly the layers it may use (the allowed sets are closed under the
# edges; checked below); "train/x.h" from model/ is simply not found. Symlinks, not copies: an edited
# header is seen at once, and a new header inside a layer folder needs no reconfigure. Moving the
# headers into per-layer folders would do the same but rename every include in the project.
# A new public header must be added to MB_PUBLIC_HEADERS_<layer>: configuring fails until it is.
# tests/layering (CTest "layering.<layer>") preprocesses every header of a layer with that layer's
# include flags (must succeed) and a probe including a header of each layer it may not use (must fail
# with "not found").

set(MB_LAYERS core dist io kernels tokenizer model train tasks serve capi)
set(MB_LAYER_DEPS_core "")
set(MB_LAYER_DEPS_dist core)
set(MB_LAYER_DEPS_io core)
set(MB_LAYER_DEPS_kernels core)
set(MB_LAYER_DEPS_tokenizer io core)
set(MB_LAYER_DEPS_model kernels io core)
set(MB_LAYER_DEPS_train model kernels tokenizer io core)
set(MB_LAYER_DEPS_tasks train model kernels tokenizer io core)
set(MB_LAYER_DEPS_serve tasks train model kernels tokenizer io core)
set(MB_LAYER_DEPS_capi tasks train model kernels tokenizer io core)

# include/modernbert/*.h by layer. A header listed here but absent is skipped (renames in flight).
set(MB_PUBLIC_HEADERS_core communicator.h error.h)
set(MB_PUBLIC_HEADERS_dist distributed.h)
set(MB_PUBLIC_HEADERS_io config.h file_io.h safetensors.h token_ids.h)
set(MB_PUBLIC_HEADERS_kernels precision.h)
set(MB_PUBLIC_HEADERS_tokenizer tokenizer.h)
set(MB_PUBLIC_HEADERS_model model.h model_dir.h weights.h)
set(MB_PUBLIC_HEADERS_train contrastive.h mlm_data.h optimizer.h pretrain.h schedule.h tiling.h train_model.h train_options.h training_loop.h)
set(MB_PUBLIC_HEADERS_tasks baselines.h batching.h eval_data.h evaluation.h finetune.h inference.h metrics.h search.h tasks.h)
set(MB_PUBLIC_HEADERS_serve "")
set(MB_PUBLIC_HEADERS_capi "")
# Top-level public headers, include/<h> (included as <h>, like llama.h), by layer: linked as
# ${MB_LAYER_INCLUDE}/<layer>/<h> and checked by the layering test like the layer's own headers.
set(MB_TOP_HEADERS_capi modernbert.h)

# BLAS (OpenBLAS / oneDNN) is linked and included by the kernels layer only: no other layer can
# even include <cblas.h> (#13: all tensor arithmetic behind the kernel boundary).

set(MB_LAYER_INCLUDE ${CMAKE_BINARY_DIR}/layer_include)

# ---- checks of the map ---------------------------------------------------------------------------
foreach(layer ${MB_LAYERS})
  foreach(dep ${MB_LAYER_DEPS_${layer}})
    foreach(dd ${MB_LAYER_DEPS_${dep}})
      if(NOT dd IN_LIST MB_LAYER_DEPS_${layer})
        message(FATAL_ERROR "layers: ${layer} uses ${dep}, which uses ${dd}: add ${dd} to MB_LAYER_DEPS_${layer}")
      endif()
    endforeach()
  endforeach()
endforeach()
file(GLOB MB_PUBLIC_HEADER_FILES CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/include/modernbert
     ${CMAKE_SOURCE_DIR}/include/modernbert/*.h)
foreach(h ${MB_PUBLIC_HEADER_FILES})
  set(owners "")
  foreach(layer ${MB_LAYERS})
    if(h IN_LIST MB_PUBLIC_HEADERS_${layer})
      list(APPEND owners ${layer})
    endif()
  endforeach()
  list(LENGTH owners n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "layers: include/modernbert/${h} must belong to exactly one layer (now: '${owners}'); "
                        "add it to one MB_PUBLIC_HEADERS_<layer> in cmake/layers.cmake")
  endif()
endforeach()

# ---- the include roots ---------------------------------------------------------------------------
foreach(layer ${MB_LAYERS} cli)
  set(root ${MB_LAYER_INCLUDE}/${layer})
  file(MAKE_DIRECTORY ${root}/modernbert)
  # Dangling while the folder does not exist yet (core before it lands): then nothing is found there.
  file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/${layer} ${root}/${layer} SYMBOLIC)
  set(MB_LAYER_PUBLIC_${layer} "")
  foreach(h ${MB_PUBLIC_HEADERS_${layer}})
    if(EXISTS ${CMAKE_SOURCE_DIR}/include/modernbert/${h})
      file(CREATE_LINK ${CMAKE_SOURCE_DIR}/include/modernbert/${h} ${root}/modernbert/${h} SYMBOLIC)
      list(APPEND MB_LAYER_PUBLIC_${layer} ${h})
    endif()
  endforeach()
  foreach(h ${MB_TOP_HEADERS_${layer}})
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/include/${h} ${root}/${h} SYMBOLIC)
  endforeach()
  # Links left from an earlier configure (a header removed or moved to another layer).
  file(GLOB stale RELATIVE ${root}/modernbert ${root}/modernbert/*)
  foreach(h ${stale})
    if(NOT h IN_LIST MB_LAYER_PUBLIC_${layer})
      file(REMOVE ${root}/modernbert/${h})
    endif()
  endforeach()
endforeach()

# BLAS / oneDNN / OpenMP as one usage requirement: linked by kernels only (and by the benchmarks that
# time raw sgemm against ours).
add_library(mb_blas INTERFACE)
target_link_libraries(mb_blas INTERFACE PkgConfig::OPENBLAS Threads::Threads)
if(MB_HAVE_ONEDNN)
  target_compile_definitions(mb_blas INTERFACE MODERNBERT_HAVE_ONEDNN=1)
  target_include_directories(mb_blas INTERFACE ${DNNL_INCLUDE_DIR})
  target_link_libraries(mb_blas INTERFACE ${DNNL_LIBRARY} OpenMP::OpenMP_CXX)
endif()

# mb_add_library(SUFFIX [compile flags...]): the layer targets modernbert_<layer>SUFFIX (STATIC, or
# INTERFACE while a layer has no .cpp yet) and the umbrella modernbert_libSUFFIX (INTERFACE, links
# every layer) that the CLI, tests, benchmarks and fuzz targets use. The ASan/UBSan copy is the same
# definition with SUFFIX _san.
function(mb_add_library suffix)
  foreach(layer ${MB_LAYERS})
    set(t modernbert_${layer}${suffix})
    file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${layer}/*.cpp)
    # Headers too, so that a header-only folder appearing or changing reconfigures.
    file(GLOB_RECURSE hdrs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${layer}/*.h)
    set(deps "")
    foreach(d ${MB_LAYER_DEPS_${layer}})
      list(APPEND deps modernbert_${d}${suffix})
    endforeach()
    if(srcs)
      add_library(${t} STATIC ${srcs} ${hdrs})
      set(vis PUBLIC)
      target_compile_options(${t} PRIVATE ${MB_WARNINGS} ${ARGN})
    else()
      add_library(${t} INTERFACE)
      set(vis INTERFACE)
    endif()
    target_include_directories(${t} ${vis} ${MB_LAYER_INCLUDE}/${layer})
    target_link_libraries(${t} ${vis} ${deps})
    if(layer STREQUAL "core")
      target_link_libraries(${t} ${vis} Threads::Threads)
    elseif(layer STREQUAL "io")
      target_link_libraries(${t} ${vis} nlohmann_json::nlohmann_json)
    elseif(layer STREQUAL "kernels")
      # PRIVATE: a static library still passes the link on, never the headers or the definition.
      target_link_libraries(${t} PRIVATE mb_blas)
    elseif(layer STREQUAL "dist" AND srcs AND MB_HAVE_MPI)
      # MPI (Open MPI from Debian) is linked and included here only (#16).
      target_link_libraries(${t} PRIVATE MPI::MPI_C)
      target_compile_definitions(${t} PRIVATE MB_HAVE_MPI=1)
    elseif(layer STREQUAL "tokenizer")
      target_link_libraries(${t} PRIVATE ICU::uc)
    elseif(layer STREQUAL "capi" AND srcs)
      # mb_version(); capi.cpp checks that modernbert.h's MODERNBERT_VERSION_STRING agrees.
      target_compile_definitions(${t} PRIVATE MB_PROJECT_VERSION="${PROJECT_VERSION}")
    elseif(layer STREQUAL "serve" AND srcs)
      # cpp-httplib from Debian (libcpp-httplib-dev: a shared library + its header), used only here.
      target_link_libraries(${t} PRIVATE PkgConfig::HTTPLIB)
    endif()
  endforeach()
  add_library(modernbert_lib${suffix} INTERFACE)
  foreach(layer ${MB_LAYERS})
    target_link_libraries(modernbert_lib${suffix} INTERFACE modernbert_${layer}${suffix})
  endforeach()
  # Sanitizer (etc.) flags must reach the final link of every binary.
  target_link_options(modernbert_lib${suffix} INTERFACE ${ARGN})
endfunction()

# mb_add_cli(NAME LIBRARY [compile flags...]): one binary, git-style subcommands registered by each
# src/cli/cmd_*.cpp. It may use every layer (LIBRARY is an umbrella).
function(mb_add_cli name lib)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/cli/*.cpp)
  add_executable(${name} ${srcs})
  target_include_directories(${name} PRIVATE ${MB_LAYER_INCLUDE}/cli)
  target_compile_options(${name} PRIVATE ${MB_WARNINGS} ${ARGN})
  target_link_libraries(${name} PRIVATE ${lib})
endfunction()

# mb_add_layering_tests(): CTest "layering.<layer>" for each layer (label "script"; counted by
# scripts/run_tests.sh next to the GoogleTest cases). See cmake/check_layering.cmake.
function(mb_add_layering_tests)
  set(dir ${CMAKE_BINARY_DIR}/layering)
  foreach(layer ${MB_LAYERS})
    set(t modernbert_${layer})
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "INTERFACE_LIBRARY")
      set(prop INTERFACE_INCLUDE_DIRECTORIES)
    else()
      set(prop INCLUDE_DIRECTORIES)  # evaluated with the include directories of its link closure
    endif()
    file(GENERATE OUTPUT ${dir}/${layer}.includes CONTENT "$<JOIN:$<TARGET_PROPERTY:${t},${prop}>,\n>\n")
    # Headers of the layer (internal, relative to src/; public, as modernbert/<h>).
    file(GLOB_RECURSE own RELATIVE ${CMAKE_SOURCE_DIR}/src CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${layer}/*.h)
    set(own_public "")
    foreach(h ${MB_LAYER_PUBLIC_${layer}})
      list(APPEND own_public modernbert/${h})
    endforeach()
    list(APPEND own_public ${MB_TOP_HEADERS_${layer}})
    # One header of every other layer: allowed ones must be found, the others must not.
    set(allowed "")
    set(forbidden "")
    foreach(other ${MB_LAYERS})
      if(other STREQUAL layer)
        continue()
      endif()
      file(GLOB_RECURSE oh RELATIVE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/src/${other}/*.h)
      list(SORT oh)
      set(probe "")
      if(oh)
        list(GET oh 0 first)
        list(APPEND probe ${first})
      endif()
      if(MB_LAYER_PUBLIC_${other})
        list(GET MB_LAYER_PUBLIC_${other} 0 first)
        list(APPEND probe modernbert/${first})
      endif()
      if(MB_TOP_HEADERS_${other})
        list(GET MB_TOP_HEADERS_${other} 0 first)
        list(APPEND probe ${first})
      endif()
      if(other IN_LIST MB_LAYER_DEPS_${layer})
        list(APPEND allowed ${probe})
      else()
        list(APPEND forbidden ${probe})
      endif()
    endforeach()
    # Lists travel as "|"-separated strings (a ";" would split the test's command line).
    string(REPLACE ";" "|" own "${own};${own_public}")
    string(REPLACE ";" "|" allowed "${allowed}")
    string(REPLACE ";" "|" forbidden "${forbidden}")
    add_test(NAME layering.${layer}
             COMMAND ${CMAKE_COMMAND} -DCXX=${CMAKE_CXX_COMPILER} -DLAYER=${layer} -DSRC=${CMAKE_SOURCE_DIR}
                     -DINCLUDES=${dir}/${layer}.includes -DWORK=${dir}/${layer}
                     "-DOWN=${own}" "-DALLOWED=${allowed}" "-DFORBIDDEN=${forbidden}"
                     -P ${CMAKE_SOURCE_DIR}/cmake/check_layering.cmake)
    set_tests_properties(layering.${layer} PROPERTIES LABELS script)
  endforeach()
endfunction()
