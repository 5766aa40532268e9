# CApi.installed_package (cmake -P): installs the build tree BUILD_DIR into WORK_DIR/prefix, builds SOURCE (the
# C smoke test) in a C-only project and CXX_SOURCE (the C++ smoke test) in a C++ project, each finding the package
# with find_package(axfold) and linking axfold::axfold_c, and runs both on the golden set in DATA. Checks that only
# the public headers are installed. Fails with the step's output when any step fails.
file(REMOVE_RECURSE "${WORK_DIR}")
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()
run_step("cmake --install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
file(WRITE "${WORK_DIR}/consumer/CMakeLists.txt"
     "cmake_minimum_required(VERSION 3.22)\n"
     "project(axfold_c_consumer C)\n"
     "find_package(axfold 0.1 REQUIRED)\n"
     "add_executable(consumer \"${SOURCE}\")\n"
     "target_link_libraries(consumer axfold::axfold_c m)\n")
run_step("configuring a C project with find_package(axfold)" ${CMAKE_COMMAND} -S "${WORK_DIR}/consumer"
         -B "${WORK_DIR}/consumer/build" "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
run_step("building it" ${CMAKE_COMMAND} --build "${WORK_DIR}/consumer/build")
run_step("running it" "${WORK_DIR}/consumer/build/consumer" "${DATA}/params.npz" "${DATA}/features.h5" "${WORK_DIR}")
message(STATUS "${step_output}")

file(GLOB_RECURSE installed_headers RELATIVE "${WORK_DIR}/prefix/include" "${WORK_DIR}/prefix/include/*")
if(NOT installed_headers STREQUAL "axfold/axfold.h;axfold/axfold.hpp")
  message(FATAL_ERROR "installed headers: ${installed_headers}; expected only axfold/axfold.h and axfold/axfold.hpp")
endif()
file(WRITE "${WORK_DIR}/cxx_consumer/CMakeLists.txt"
     "cmake_minimum_required(VERSION 3.22)\n"
     "project(axfold_cxx_consumer CXX)\n"
     "set(CMAKE_CXX_STANDARD 20)\n"
     "find_package(axfold 0.1 REQUIRED)\n"
     "add_executable(consumer \"${CXX_SOURCE}\")\n"
     "target_link_libraries(consumer axfold::axfold_c)\n")
run_step("configuring a C++ project with find_package(axfold)" ${CMAKE_COMMAND} -S "${WORK_DIR}/cxx_consumer"
         -B "${WORK_DIR}/cxx_consumer/build" "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
run_step("building it" ${CMAKE_COMMAND} --build "${WORK_DIR}/cxx_consumer/build")
run_step("running it" "${WORK_DIR}/cxx_consumer/build/consumer" "${DATA}/params.npz" "${DATA}/features.h5" "${WORK_DIR}")
message(STATUS "${step_output}")
file(REMOVE_RECURSE "${WORK_DIR}")
