/**
 * Names the functions and the CDK stack must agree on (metrics, the audit key's encryption context). A module of
 * constants with no imports, so the CDK package can bundle it without pulling in the code that uses them.
 */

/** The CloudWatch namespace of every Keysmith metric (Powertools EMF). */
export const METRICS_NAMESPACE = 'Keysmith';
/** Counted once per stored item refused by its integrity check (dimension `service`); the stack alarms on any. */
export const TAMPER_METRIC = 'TamperDetected';
/** The Powertools service name of each function, the `service` dimension of its metrics. */
export const metricsServiceName = (fn: 'authorizer' | 'management' | 'discovery' | 'token' | 'audit'): string => `keysmith-${fn}`;
/** Milliseconds from a record's commit to its linking (Maximum per batch; the stack alarms when it exceeds the link bound). */
export const AUDIT_LINK_LAG_METRIC = 'AuditLinkLag';
/** The `purpose` of every audit record's encryption context; the stack's IAM condition on the audit key names it. */
export const AUDIT_ENCRYPTION_PURPOSE = 'keysmith-audit';
/** The partition-key prefix of the token endpoint's jti records: the one prefix its IAM policy lets it write. */
export const JTI_PARTITION_PREFIX = 'JTI#';
/** The attributes of a jti record, and the only ones the token function's IAM policy lets it write. */
export const JTI_ATTRIBUTES = ['pk', 'sk', 'expiresAtEpoch'] as const;
