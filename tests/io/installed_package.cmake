# CApi.installed_package (cmake -P): installs the build tree BUILD_DIR into WORK_DIR/prefix, builds SOURCE (the
# C smoke test) in a C-only project that finds the package with find_package(axfold) and links axfold::axfold_c,
# and runs it on the golden set in DATA. Fails with the step's output when any step fails.
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
file(REMOVE_RECURSE "${WORK_DIR}")
