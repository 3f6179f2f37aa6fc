/*
 * auth_api.h — /auth/v1: login (LDAP, GitHub token exchange), access-token
 * minting, logout. The credentials themselves are db/credential.c's; the
 * check of a presented token is tokencache.c's.
 */
#ifndef TSR_AUTH_API_H
#define TSR_AUTH_API_H

#include "http.h"

extern const struct route_table auth_routes;

#endif
