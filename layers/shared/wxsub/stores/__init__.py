"""Storage adapters: boto3 behind small classes (SSM parameters, DynamoDB tables)."""
