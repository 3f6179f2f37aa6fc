/*
 * hooks_hr.h — POST /hooks/hr: the HR system's signed offboarding webhook.
 */
#ifndef TSR_HOOKS_HR_H
#define TSR_HOOKS_HR_H

#include "http.h"

extern const struct route_table hooks_hr_routes;

#endif
