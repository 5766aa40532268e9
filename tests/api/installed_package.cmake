# CApi.installed_package (cmake -P): installs the build tree BUILD_DIR into WORK_DIR/prefix, checks that only the
# public headers are installed, builds SOURCE (the C smoke test) in a C-only project and CXX_SOURCE (the C++ smoke
# test) in a C++ project, each finding the package with find_package(axfold) and linking axfold::axfold_c, and runs
# both on the golden set in DATA. Fails with the step's output when any step fails.
file(REMOVE_RECURSE "${WORK_DIR}")
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

# A consumer project in `language` (C or CXX) built from `source` against the installed package, then run.
function(build_and_run_consumer language source extra_lines link_extra)
  set(dir "${WORK_DIR}/consumer_${language}")
  file(WRITE "${dir}/CMakeLists.txt"
       "cmake_minimum_required(VERSION 3.22)\n"
       "project(axfold_consumer ${language})\n"
       "${extra_lines}"
       "find_package(axfold 0.1 REQUIRED)\n"
       "add_executable(consumer \"${source}\")\n"
       "target_link_libraries(consumer axfold::axfold_c ${link_extra})\n")
  run_step("configuring a ${language} project with find_package(axfold)" ${CMAKE_COMMAND} -S "${dir}" -B "${dir}/build"
           "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
  run_step("building it" ${CMAKE_COMMAND} --build "${dir}/build")
  run_step("running it" "${dir}/build/consumer" "${DATA}/params.npz" "${DATA}/features.h5" "${WORK_DIR}")
  message(STATUS "${step_output}")
endfunction()

run_step("cmake --install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
file(GLOB_RECURSE installed_headers RELATIVE "${WORK_DIR}/prefix/include" "${WORK_DIR}/prefix/include/*")
if(NOT installed_headers STREQUAL "axfold/axfold.h;axfold/axfold.hpp")
  message(FATAL_ERROR "installed headers: ${installed_headers}; expected only axfold/axfold.h and axfold/axfold.hpp")
endif()
build_and_run_consumer(C "${SOURCE}" "" m)
build_and_run_consumer(CXX "${CXX_SOURCE}" "set(CMAKE_CXX_STANDARD 20)\n" "")
file(REMOVE_RECURSE "${WORK_DIR}")
