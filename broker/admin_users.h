/*
 * admin_users.h — /admin/v1/users and /admin/v1/tokens: people and their
 * credentials, for admins and the security team (offboard, reinstate,
 * revoke). Offboarding goes through db_offboard(), the one path.
 */
#ifndef TSR_ADMIN_USERS_H
#define TSR_ADMIN_USERS_H

#include "http.h"

extern const struct route_table admin_users_routes;

#endif
