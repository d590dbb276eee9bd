# Cuts the README quick start's C++ snippet (the ```cpp block whose first line is
# "// quickstart: C++") out of README (-DREADME=...) into OUT (-DOUT=...), so that the build
# compiles exactly what the README shows (tests/test_quickstart.cpp runs it).
file(READ "${README}" text)
set(open "```cpp\n// quickstart: C++")
string(FIND "${text}" "${open}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${README}: no ```cpp block starting with '// quickstart: C++'")
endif()
math(EXPR at "${at} + 7")
string(SUBSTRING "${text}" ${at} -1 rest)
string(FIND "${rest}" "\n```\n" end)
if(end EQUAL -1)
  message(FATAL_ERROR "${README}: the quick start's ```cpp block is not closed")
endif()
math(EXPR end "${end} + 1")
string(SUBSTRING "${rest}" 0 ${end} code)
file(WRITE "${OUT}.tmp" "${code}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
