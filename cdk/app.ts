/** The CDK app entry (`cdk.json`: `npx tsx cdk/app.ts`). Configure it with context: see docs/deploy.md. */
import { createKeysmithApp } from './keysmith-app.ts';

createKeysmithApp().app.synth();
