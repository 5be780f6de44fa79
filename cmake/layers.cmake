# One static library per layer, and the rule that a layer includes only downward.
#
# Every layer's sources see the headers through a directory of its own
# (build/layer-include/<layer>/portrelay/...) that links to its own headers and to those
# of the layers it depends on, directly or not, and to nothing else. An #include that
# points up or sideways names a file that is not there, so the build fails at once:
#   fatal error: portrelay/server/submission_session.hpp: No such file or directory
#
# portrelay_layer(NAME SOURCES <files> HEADERS <dirs or files under include/portrelay>
#                 DEPENDS <lower layers> LIBS <external targets>)
set(PORTRELAY_LAYER_INCLUDE ${CMAKE_BINARY_DIR}/layer-include)

function(portrelay_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;HEADERS;DEPENDS;LIBS" ${ARGN})
  # What this layer may see: its own headers plus everything its dependencies may see.
  set(visible ${L_HEADERS})
  foreach(dep ${L_DEPENDS})
    get_property(dep_visible GLOBAL PROPERTY PORTRELAY_VISIBLE_${dep})
    list(APPEND visible ${dep_visible})
  endforeach()
  list(REMOVE_DUPLICATES visible)
  set_property(GLOBAL PROPERTY PORTRELAY_VISIBLE_${name} ${visible})

  set(root ${PORTRELAY_LAYER_INCLUDE}/${name})
  file(REMOVE_RECURSE ${root})
  file(MAKE_DIRECTORY ${root}/portrelay)
  foreach(entry ${visible})
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/include/portrelay/${entry} ${root}/portrelay/${entry}
         SYMBOLIC)
  endforeach()

  add_library(portrelay_${name} STATIC ${L_SOURCES})
  target_include_directories(portrelay_${name} PRIVATE ${root})
  list(TRANSFORM L_DEPENDS PREPEND portrelay_ OUTPUT_VARIABLE dep_targets)
  target_link_libraries(portrelay_${name} PUBLIC ${dep_targets} ${L_LIBS})
endfunction()
