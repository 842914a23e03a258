/** The management API: service clients, access keys and audit events of a tenant (admin routes). */
import { apiHandler } from '#lambdas/api-gateway.ts';
import { functionMetrics, tamperReporter } from '#lambdas/metrics.ts';
import { loadConfig, requireTable } from '#shared/config.ts';
import { createManagement } from '#shared/wiring.ts';

const config = loadConfig();
requireTable(config, 'usage');
const { store, audit, usage, service } = createManagement(config, {
  onTamper: tamperReporter(functionMetrics('management')),
});

export const handler = apiHandler('management', { config, store, audit, usage, service });
