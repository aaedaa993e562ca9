# SPDX-License-Identifier: Apache-2.0
# package.cmake - what the Debian package holds and how CPack builds it
# (deploy/package.sh runs `cpack -G DEB`): the binaries, the example configs
# as conffiles under /etc/lineagent, the systemd units, and maintainer scripts
# that create the service users and the state directories. Dependencies come
# from the binaries' shared libraries (dpkg-shlibdeps), not from a list.
install(FILES ${CMAKE_SOURCE_DIR}/deploy/lineagent.conf ${CMAKE_SOURCE_DIR}/deploy/provisiond.conf
        DESTINATION /etc/lineagent PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/lineagent.service ${CMAKE_SOURCE_DIR}/deploy/provisiond.service
        DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION share/doc/lineagent)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/README.md DESTINATION share/doc/lineagent RENAME README.deploy.md)
install(FILES ${CMAKE_SOURCE_DIR}/proto/README.md DESTINATION share/doc/lineagent RENAME README.proto.md)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lineagent)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "lineagent maintainers <lineagent@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "PCBA production line agent and provisioning server")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS adduser)
# The scripts are configured so conffiles lists exactly what was installed.
configure_file(${CMAKE_SOURCE_DIR}/deploy/debian/conffiles.in ${CMAKE_BINARY_DIR}/debian/conffiles @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst ${CMAKE_SOURCE_DIR}/deploy/debian/postrm
    ${CMAKE_BINARY_DIR}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
